"""``depthscope pareto``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import html_arg, split, write_html
from depthscope.cli._base import Command, register_command


@register_command
class Pareto(Command):
    """Pareto frontier of models over any two of their costs (profile.json), accuracies (metrics.json) and
    explanation scores (summary.csv of `assess` or `compare`: af_perturbation, infidelity, spearman, top10_iou...),
    e.g. latency against RMSE or against the attribution agreement with the fp32 model, and each model's EER
    (Efficient Error Rate: mean of model/reference over the --eer-metrics) against --reference. Each axis's
    direction is known: summaries state theirs, delta1-3 and onnxruntime_speedup are higher-is-better, the rest
    lower-is-better.

    Writes DIR/pareto.csv (model, x, y, on_frontier, eer) and DIR/pareto.png (the frontier drawn).

    Example: depthscope pareto --profile out/profile/profile.json --metrics out/eval/metrics.json
             --x latency_ms_median --y rmse --reference meter-xxs-nyu --out out/pareto
             depthscope pareto --profile out/profile/profile.json --summary out/compare-int8/summary.csv
             out/compare-prune/summary.csv --method saliency --x latency_ms_median --y spearman
    """

    name = "pareto"
    help = "Pareto frontier over two metrics, and EER against a reference"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.efficiency.run import DEFAULT_EER_METRICS

        p.add_argument("--profile", help="profile.json written by `depthscope profile`")
        p.add_argument("--metrics", nargs="*", default=[], help="metrics.json files written by `depthscope evaluate`")
        p.add_argument("--summary", nargs="*", default=[], help="summary.csv files of `depthscope assess` or `compare`")
        p.add_argument("--method", help="the attribution method whose summary rows are used (needed when a summary "
                       "has several)")  # fmt: skip
        p.add_argument("--x", default="latency_ms_median", help="x metric (default %(default)s)")
        p.add_argument("--y", default="rmse", help="y metric (default %(default)s)")
        p.add_argument("--reference", help="model name to compute every model's EER against")
        p.add_argument(
            "--eer-metrics",
            default=",".join(DEFAULT_EER_METRICS),
            help="comma-separated EER metrics (default %(default)s)",
        )
        p.add_argument("--out", default="out/pareto", help="output directory (default %(default)s)")
        html_arg(p)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.efficiency import pareto
        from depthscope.output.tables import format_table

        table = pareto(
            args.profile, args.metrics, args.x, args.y, args.out, reference=args.reference,
            eer_metrics=split(args.eer_metrics), summaries=args.summary, method=args.method,
        )  # fmt: skip
        print(format_table(table))
        print(f"wrote {Path(args.out) / 'pareto.csv'} and pareto.png")
        from depthscope.report.html import figure, plain_table

        body = plain_table(table) + figure(Path(args.out) / "pareto.png", f"{args.x} against {args.y}")
        write_html(args, "Pareto frontier", body, {"x": args.x, "y": args.y, "reference": args.reference})
        return 0
