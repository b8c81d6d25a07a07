"""Loopback helpers for the tests that start servers (the explorer, Ray): nothing leaves 127.0.0.1."""

import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
