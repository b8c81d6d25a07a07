"""``depthscope robustness``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import (
    data_args,
    data_spec,
    engine_args,
    engine_from,
    force_new_arg,
    html_arg,
    load,
    model_args,
    open_data,
    split,
    split_ints,
    write_html,
)
from depthscope.cli._base import Command, register_command


@register_command
class Robustness(Command):
    """How does the depth hold up under image corruptions (KITTI-C / NYU-C of the RoboDepth benchmark)? Every
    image is corrupted on the fly (ImageNet-C's formulas and severity constants, seeded: the same images every run)
    and scored: RMSE, AbsRel, delta1 and the depth estimation error DEE = (AbsRel - delta1 + 1) / 2 per corruption
    and severity; the corruption error CE against --reference and the resilience rate RR per corruption, their
    means mCE and mRR; and how far each --methods map of the mean depth moves (Spearman and top-10 % IoU of the
    clean against the corrupted image's map). Resumable.

    Writes DIR/results.csv (one row per image, corruption and severity), DIR/settings.json, DIR/summary.csv,
    DIR/corruptions.csv (CE, RR), DIR/robustness.json (mCE, mRR, settings) and DIR/corruptions.png.

    Example: depthscope robustness --model meter-xxs-nyu --limit 3 --corruptions gaussian_noise,defocus_blur,jpeg_compression --severities 1,3,5
    """

    name = "robustness"
    help = "accuracy, mCE/mRR and explanation drift under image corruptions"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.ops.corruptions import CORRUPTIONS
        from depthscope.robustness.run import DEFAULT_CORRUPTIONS

        model_args(p)
        data_args(p)
        p.add_argument("--corruptions", default=",".join(DEFAULT_CORRUPTIONS),
                       help=f"comma-separated (registered: {', '.join(CORRUPTIONS.names())}; default %(default)s)")  # fmt: skip
        p.add_argument("--severities", default="1,2,3,4,5", help="of 1-5 (default %(default)s)")
        p.add_argument("--methods", default="saliency",
                       help="attribution methods whose maps' drift is measured ('' for none; default %(default)s)")  # fmt: skip
        p.add_argument("--reference", help="the model mCE is relative to (default: the model itself: mCE = 100 %%)")
        p.add_argument("--limit", type=int, help="first N images only (default: all)")
        p.add_argument("--seed", type=int, default=0, help="image i is corrupted with seed + i (default %(default)s)")
        p.add_argument("--out", default="out/robustness", help="output directory (default %(default)s)")
        force_new_arg(p)
        html_arg(p)
        engine_args(p)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.output.tables import format_table
        from depthscope.robustness import robustness

        severities = split_ints(args.severities, "--severities")
        engine = engine_from(args)
        if engine is None:
            model = load(args, args.model)
            data = open_data(args, model.info.eval.dataset)
        else:
            model, data = args.model, data_spec(args)
        res = robustness(model, data, split(args.corruptions), severities, split(args.methods), args.reference,
                         args.out, args.limit, args.seed, args.device, progress=True, force_new=args.force_new,
                         engine=engine)  # fmt: skip
        print(format_table(res.rows, digits=3))
        print(format_table(res.per_corruption, digits=3))
        print(f"mCE {res.mce:.1%}, mRR {res.mrr:.1%}")
        print(f"wrote {Path(args.out) / 'results.csv'}, summary.csv, corruptions.csv, robustness.json, corruptions.png")
        from depthscope.report.html import figure, plain_table

        body = plain_table(res.rows) + plain_table(res.per_corruption) + figure(Path(args.out) / "corruptions.png", "")
        write_html(args, "robustness under corruptions", body, {"mce": res.mce, "mrr": res.mrr}, [])
        return 0
