"""Tracing a network (``torch.export``, the ONNX exporter) prints graph dumps and logs on failure; a user needs one
line naming the reason. :func:`quiet_tracing` keeps the noise off the terminal and :func:`trace_reason` finds the
reason in the exception chain."""

from __future__ import annotations

import contextlib
import io
import logging
import re
from collections.abc import Iterator

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def quiet_tracing() -> Iterator[io.StringIO]:
    """Inside: torch's loggers above ERROR and ``stdout``/``stderr`` captured (torch.export prints the graph it
    could not trace to stderr); yields the captured text."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.export", "torch._dynamo", "torch.fx", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    buf = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
            yield buf
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def trace_reason(error: BaseException, limit: int = 300) -> str:
    """The first line of the innermost cause of ``error`` (exporters wrap the tracer's reason in their own
    "failed to export" message), without colour codes: ``"GuardOnDataDependentSymNode: Could not guard ..."``.

    Example:
        >>> try:
        ...     try:
        ...         raise ValueError("the reason")
        ...     except ValueError as e:
        ...         raise RuntimeError("Failed to export. Next steps:") from e
        ... except RuntimeError as outer:
        ...     trace_reason(outer)
        'ValueError: the reason'
    """
    inner = error
    while inner.__cause__ is not None:
        inner = inner.__cause__
    lines = [ANSI.sub("", t).strip() for t in str(inner).splitlines()]
    first = next((t for t in lines if t), "")
    return f"{type(inner).__name__}: {first[:limit]}" if first else type(inner).__name__
