"""``depthscope report``: the main job."""

from __future__ import annotations

import argparse

from depthscope.cli._args import data_args, force_new_arg, load, model_args, open_data
from depthscope.cli._base import Command, register_command
from depthscope.cli.assess import add_assess_config_args, assess_config


@register_command
class Report(Command):
    """The main job in one command: metrics on the dataset, an explanation figure of its first image, and the
    assessment table, gathered in DIR/report.html (self-contained). Defaults: METER-XXS on the bundled NYU sample.
    Takes every option of `depthscope assess`.
    """

    name = "report"
    help = "the main job: metrics, explanation figure and assessment table in one HTML page"

    def configure(self, p: argparse.ArgumentParser) -> None:
        model_args(p)
        data_args(p)
        p.add_argument(
            "--limit", type=int, default=3, help="images to assess (evaluation uses all; default %(default)s)"
        )
        p.add_argument(
            "--gallery", type=int, default=3, help="images in the gallery of predictions (default %(default)s)"
        )
        p.add_argument("--out", default="runs/demo", help="output directory (default %(default)s)")
        force_new_arg(p)
        p.add_argument(
            "--meta", nargs="?", const=True, default=False, metavar="DIR",
            help="add 'Which scores to trust for this model': without DIR, run depthscope meta-evaluate on the "
            "--limit images (about 3.5 min per NYU image on 2 cores); with DIR, read a finished run there",
        )  # fmt: skip
        add_assess_config_args(p)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.report import report

        config = assess_config(args)
        model = load(args, args.model)
        data = open_data(args, model.info.eval.dataset)
        page = report(
            model,
            data,
            args.out,
            config,
            limit=args.limit,
            device=args.device,
            progress=True,
            echo=True,
            gallery=args.gallery,
            force_new=args.force_new,
            meta=args.meta,
        )
        print(f"wrote {page}")
        return 0
