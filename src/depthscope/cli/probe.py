"""``depthscope probe``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import data_args, html_arg, load, model_args, open_data, write_html
from depthscope.cli._base import Command, register_command


@register_command
class Probe(Command):
    """What does the model read? Controlled edits of every image (the outer frame blurred, mean-filled,
    replicated from the interior, black or white at 4/8/16 px; the content shifted or zoomed with the frame kept;
    the content moved up or down, the horizon cue; brightness, contrast; a mirror) and how far each moves the
    predicted depth: the relative change of the mean depth and the RMSE between the depth maps (m), mean ± std
    over images with the per-image values. A probe that moves the mean depth by more than --threshold is printed as
    a warning: perturbation scores of pixels the model uses this way measure that use, not the map.

    Writes DIR/per_image.csv (one row per image and probe), DIR/summary.csv and DIR/probe.json.

    Example: depthscope probe --model meter-xxs-nyu --data ../shared/data/nyu_sample --limit 3
    """

    name = "probe"
    help = "shortcut probes: how far controlled edits (the image frame, shifts, the horizon cue...) move the depth"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.probe import DEFAULT_THRESHOLD, PROBES

        model_args(p)
        data_args(p)
        p.add_argument("--limit", type=int, help="first N images only (default: all)")
        p.add_argument("--probes", help=f"comma-separated probes (default: all): {', '.join(PROBES.names())}")
        p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                       help="relative change of the mean depth reported as a shortcut (default %(default)s)")  # fmt: skip
        p.add_argument("--out", default="out/probe", help="output directory (default %(default)s)")
        html_arg(p)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.output.tables import format_table
        from depthscope.probe import display_probes, probe

        model = load(args, args.model)
        data = open_data(args, model.info.eval.dataset)
        res = probe(model, data, args.probes, args.limit, args.out, progress=True, threshold=args.threshold)
        shown = display_probes(res.summary)
        print(format_table(shown, [c for c in (shown[0] if shown else {}) if c != "edit"]))
        print(f"wrote {Path(args.out) / 'per_image.csv'}, summary.csv and probe.json")
        from depthscope.report.html import esc, plain_table

        body = "".join(f"<p class='warn'>{esc(w)}</p>" for w in res.warnings) + plain_table(shown)
        write_html(args, "shortcut probes", body, {"threshold": args.threshold}, [model])
        return 0
