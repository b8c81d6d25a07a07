"""Errors a user can act on (SPEC §7): one clear message naming the file or argument and the problem."""

from __future__ import annotations


class DepthscopeError(Exception):
    """Base class of every error depthscope raises on purpose; the CLI prints it without a traceback."""


class InputError(DepthscopeError, ValueError):
    """A file or argument the user gave is unusable (unreadable image, wrong size, NaN depth...)."""


class CheckpointError(DepthscopeError, ValueError):
    """A checkpoint is missing, corrupt or does not match the architecture."""


class UnknownNameError(DepthscopeError, ValueError):
    """A model, method, dataset... name that is not registered; the message lists the valid ones."""


class RunLockedError(DepthscopeError, RuntimeError):
    """Another run is writing the same output directory."""


_WARNED: set[str] = set()


def warn(message: str) -> None:
    """One explicit warning line on stderr (each distinct message once per process): for input that is
    plausible enough to run on but likely wrong, so a number is never silently produced from it."""
    import sys

    if message not in _WARNED:
        _WARNED.add(message)
        print(f"depthscope: warning: {message}", file=sys.stderr)
