"""``depthscope`` command line: every command is a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from depthscope.errors import DepthscopeError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):  # noqa: A002
    """Register ``(configure_parser, run)`` for a sub-command."""

    def deco(pair):
        COMMANDS[name] = pair
        pair[0].__doc__ = pair[0].__doc__ or help
        pair[0].help = help  # type: ignore[attr-defined]
        return pair

    return deco


def _model_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    from depthscope.models import list_models

    p.add_argument(
        "--model",
        default="meter-xxs-nyu",
        help=("comma-separated model names" if many else "model name")
        + f" (registered: {', '.join(list_models())}; default meter-xxs-nyu)",
    )
    p.add_argument("--weights", help="explicit checkpoint file (.pth/.pt/.safetensors) instead of the weight lookup")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        help="dataset folder, CSV of pairs, NYU labeled .mat or KITTI root (default: the bundled NYU sample, "
        "found through DEPTHSCOPE_DATA or ../shared/data)",
    )
    p.add_argument("--dataset", choices=["nyu", "kitti", "pairs"], help="layout/protocol (default: the model's)")
    p.add_argument("--depth-scale", type=float, help="integer depth PNG value / S = metres (nyu 1000, kitti 256)")
    p.add_argument("--split-file", help="KITTI Eigen list (BTS format) or NYU splits.mat")


def _open_data(args: argparse.Namespace, model_dataset: str):
    from depthscope.data import open_dataset
    from depthscope.data.sources import find_data

    return open_dataset(args.data or find_data(), args.dataset or model_dataset, args.depth_scale, args.split_file)


def _load(args: argparse.Namespace, name: str):
    from depthscope.models import load_model

    return load_model(name, weights=args.weights, device=args.device)


# ----------------------------------------------------------------------------------------------------- evaluate
def _evaluate_parser(p: argparse.ArgumentParser) -> None:
    """Accuracy metrics of a model on a dataset (MAE, RMSE, AbsRel, delta1...; depth in metres).

    Example: depthscope evaluate --model meter-xxs-nyu --data ../shared/data/nyu_sample --crop eigen --out out/eval
    """
    _model_args(p)
    _data_arg(p)
    p.add_argument(
        "--crop", choices=["eigen", "garg", "eigen_kitti", "none"], help="evaluation crop (default: model's)"
    )
    p.add_argument("--min-depth", type=float, help="lower depth cap in metres (default 1e-3)")
    p.add_argument("--max-depth", type=float, help="upper depth cap in metres (NYU 10, KITTI 80)")
    p.add_argument("--median-scaling", action="store_true", help="scale each prediction by median(gt)/median(pred)")
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--out", default="out/evaluate", help="output directory (metrics.json, per_image.csv)")


def _evaluate_run(args: argparse.Namespace) -> int:
    from depthscope.metrics import METRIC_NAMES
    from depthscope.metrics.evaluate import evaluate
    from depthscope.report.tables import format_table

    model = _load(args, args.model)
    result = evaluate(
        model,
        _open_data(args, model.info.eval.dataset),
        crop=args.crop,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        median_scaling=args.median_scaling,
        out=args.out,
        limit=args.limit,
        progress=True,
    )
    print(
        format_table(
            [{"model": result.model, "n": len(result.per_image), **result.metrics}], ["model", "n", *METRIC_NAMES]
        )
    )
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'per_image.csv'}")
    return 0


command("evaluate", "accuracy metrics of a model on a dataset")((_evaluate_parser, _evaluate_run))


# ------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthscope",
        description="Evaluate, explain and profile monocular depth estimation models. "
        "Weights are found through DEPTHSCOPE_WEIGHTS (a directory), the user cache or the public URL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (configure, run) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=configure.help,
            description=configure.__doc__,  # type: ignore[attr-defined]
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        configure(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DepthscopeError as e:
        print(f"depthscope {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"depthscope {args.command}: interrupted; finished results are kept in the output directory",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
