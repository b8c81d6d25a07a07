"""``depthscope`` command line: one module per command, each a thin layer over a library function.
Commands register themselves (:func:`~depthscope.cli._base.register_command`); options of configs are generated
from the config dataclasses."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import torch

from depthscope.cli import (  # noqa: F401
    assess,
    compare,
    evaluate,
    explain,
    export,
    listing,
    meta,
    optimize,
    pareto,
    predict,
    probe,
    profile,
    report,
    robustness,
    view,
)
from depthscope.cli._base import COMMANDS, Command, register_command
from depthscope.errors import DepthscopeError

__all__ = ["COMMANDS", "Command", "build_parser", "main", "register_command"]


# what to ask for less of when a command runs out of memory, in that command's own options
FEWER = {
    "assess": "fewer draws (--n-perturbations)",
    "compare": "fewer draws (--n-perturbations)",
    "report": "fewer draws (--n-perturbations)",
    "meta-evaluate": "fewer draws (--sensitivity-n-samples, --irof-n-segments...) or fewer --metrics",
    "explain": "fewer steps or samples (e.g. --option integrated_gradients.n_steps=32, --option "
    "smoothgrad.n_samples=10), a coarser --target grid",
    "optimize": "a smaller --batch",
    "predict": "a smaller --batch",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthscope",
        description="Evaluate, explain and profile monocular depth estimation models. "
        "Weights are found through DEPTHSCOPE_WEIGHTS (a directory), the user cache or the public URL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS.names():
        command = COMMANDS.get(name)()
        p = sub.add_parser(
            name, help=command.help, description=type(command).__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        command.configure(p)
        p.set_defaults(run=command.run)
    return parser


def version_line() -> str:
    """``depthscope X.Y.Z (torch ..., Python ...)``: what ``depthscope --version`` prints."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("depthscope")
    except PackageNotFoundError:  # run from a source tree that was not installed
        ours = "unknown (not installed)"
    return f"depthscope {ours} (torch {torch.__version__}, Python {platform.python_version()})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``depthscope ARGV``; returns the exit status (2 with one line on stderr for a user error)."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the page --html writes says how it was made
    args.started = time.perf_counter()
    try:
        return args.run(args)
    except DepthscopeError as e:
        print(f"depthscope {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
        if not isinstance(e, MemoryError | torch.OutOfMemoryError) and "can't allocate memory" not in str(e):
            raise
        reason = str(e).splitlines()[0][:200]
        fewer = FEWER.get(args.command, "less work per call")
        print(f"depthscope {args.command}: error: out of memory ({reason}); use smaller images, {fewer} or another "
              "--device", file=sys.stderr)  # fmt: skip
        return 2
    except OSError as e:  # a read-only, full or missing output path: the path and the reason, finished rows kept
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f) or "a file"
        print(f"depthscope {args.command}: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"depthscope {args.command}: interrupted; finished results are kept in the output directory",
            file=sys.stderr,
        )
        return 130
