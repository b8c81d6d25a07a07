"""What the tests check of a failing command's stderr: its error lines (a progress bar ends lines with \\r), and
that there is exactly one, without a traceback, naming what it must."""

from __future__ import annotations

import re


def error_lines(err: str) -> list[str]:
    """The ``PROG: error: ...`` lines of ``err``."""
    return [ln for ln in re.split(r"[\r\n]", err) if ": error: " in ln]


def one_line_error(err: str, *parts: str) -> None:
    """``err`` holds exactly one error line, no traceback, and the line contains every one of ``parts``."""
    errors = error_lines(err)
    assert len(errors) == 1 and "Traceback" not in err, err
    for p in parts:
        assert p in errors[0], (p, errors[0])
