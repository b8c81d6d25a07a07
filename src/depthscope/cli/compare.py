"""``depthscope compare``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import data_args, force_new_arg, html_arg, open_data, write_html
from depthscope.cli._base import Command, register_command


@register_command
class Compare(Command):
    """Does a changed model still predict the same depth, look at the same pixels and explain itself as
    faithfully? Model B (int8, pruned, new mixer, student...) against reference model A, per image and method:
    depth agreement (RMSE in m, AbsRel), attribution agreement of the magnitude maps (Spearman, SSIM, top-10 %
    IoU) and each assessment score (af_perturbation, af_depth_correlation, infidelity...) under A, under B and
    its change. Both models are scored as `assess` scores them, on the same random draws. Resumable.

    Writes DIR/results.csv (one row per method and image), DIR/settings.json, DIR/summary.csv (mean, std,
    direction and unit; `pareto --summary` reads it) and DIR/figures/IMAGE.png (A | B | B - A per method).

    Example: depthscope compare --model meter-xxs-nyu --model runs/opt/prune/model.safetensors --limit 5
    """

    name = "compare"
    help = "two models' depth, attribution maps and explanation scores compared"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.cli.assess import add_assess_config_args
        from depthscope.compare.run import DEFAULT_METHODS, DEFAULT_METRICS

        p.add_argument("--model", action="append", default=[], metavar="MODEL",
                       help="A,B (or --model twice): the reference A, then the model B compared with it (registered name, "
                       "DIR/model.safetensors from `depthscope optimize`, hf:DIR or package.module:function)")  # fmt: skip
        p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default %(default)s)")
        data_args(p)
        p.add_argument("--limit", type=int, help="first N images only (default: all)")
        p.add_argument("--figures", type=int, default=1, help="images with a map figure (default %(default)s)")
        p.add_argument("--out", default="out/compare", help="output directory (default %(default)s)")
        force_new_arg(p)
        html_arg(p)
        add_assess_config_args(p)
        p.set_defaults(methods=",".join(DEFAULT_METHODS), metrics=",".join(DEFAULT_METRICS))

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.cli._args import split
        from depthscope.cli.assess import assess_config
        from depthscope.compare import compare, display_compare
        from depthscope.compare.run import DEFAULT_METHODS, supported_methods
        from depthscope.errors import InputError
        from depthscope.models import load_model
        from depthscope.output.tables import format_table

        names = [n for given in args.model for n in split(given)]  # --model A,B as everywhere, or --model twice
        if len(names) != 2:
            raise InputError(f"compare takes two models, the reference A then B (--model A,B), got {len(names)}")
        config = assess_config(args)  # every setting checked before a model loads
        models = [load_model(name, device=args.device) for name in names]
        if args.methods == ",".join(DEFAULT_METHODS):  # the defaults: only what both models can run
            config = supported_methods(config, models)
        data = open_data(args, models[0].info.eval.dataset)
        summary = compare(*models, data, config, args.out, limit=args.limit, device=args.device, progress=True,
                          figures=args.figures, force_new=args.force_new)  # fmt: skip
        shown = display_compare(summary)
        print(f"B = {models[1].name} against A = {models[0].name}")
        print(format_table(shown))
        out = Path(args.out)
        print(f"wrote {out / 'results.csv'}, summary.csv and figures/")
        from depthscope.report.html import figure, plain_table

        pics = sorted((out / "figures").glob("**/*.png"))[: args.figures]
        body = plain_table(shown) + "".join(figure(f, f"{f.stem}: A | B | B - A") for f in pics)
        write_html(args, f"{models[1].name} compared with {models[0].name}", body, config.to_dict(), models)
        return 0
