"""The ``depthscope`` command's entry point: light to import, so that Ctrl-C while torch and the commands load
(a few seconds) ends with one line, not a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    """Load the command line (:func:`depthscope.cli.main`) and run it on ``sys.argv``."""
    try:
        from depthscope.cli import main as run

        return run()
    except KeyboardInterrupt:
        print("depthscope: interrupted; finished results are kept in the output directory", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
