"""``depthscope assess``: every option comes from :class:`~depthscope.assess.AssessConfig` and the registered
metrics' configs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from depthscope.cli._args import (
    add_config_args,
    config_values,
    data_args,
    data_spec,
    engine_args,
    engine_from,
    force_new_arg,
    html_arg,
    load,
    model_args,
    open_data,
    option_arg,
    write_html,
)
from depthscope.cli._base import Command, register_command

if TYPE_CHECKING:
    from depthscope.assess import AssessConfig


def add_assess_config_args(p: argparse.ArgumentParser, defaults: AssessConfig | None = None) -> None:
    """The options of an :class:`~depthscope.assess.AssessConfig` (``defaults``: the one ``--help`` shows;
    default ``AssessConfig()``): methods, metrics, draws, seed, ``--option`` and one flag per option of every
    registered metric (``--METRIC-OPTION``)."""
    from depthscope.assess import METRICS, AssessConfig
    from depthscope.assess.config import PROTOCOLS
    from depthscope.explain import METHODS

    d = defaults or AssessConfig()
    p.add_argument(
        "--methods",
        "--method",
        dest="methods",
        default=",".join(d.methods),
        help=f"comma-separated attribution methods (registered: {', '.join(METHODS.names())}; default %(default)s)",
    )
    p.add_argument(
        "--metrics",
        default=",".join(d.metrics),
        help=f"comma-separated assessment metrics (registered: {', '.join(METRICS.names())}; default %(default)s)",
    )
    p.add_argument(
        "--n-perturbations",
        type=int,
        default=d.n_perturbations,
        help="random draws of Infidelity and the Faithfulness Correlation (default: %(default)s, the count chosen by "
        "benchmarks/perturbation_count.py)",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="image i uses seed + i (default %(default)s)")
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default=d.protocol,
        help="named perturbation settings: paper (pixels -> image mean, 0-50 %%) or recommended (README, 'Which "
        "protocol'); --curves-* options override it (default %(default)s)",
    )
    p.add_argument(
        "--perturb-region", default=d.perturb_region, metavar="crop|full|x0,y0,x1,y1",
        help="the pixels every perturbation metric may perturb, curves ranked within them: crop (the model's "
        "evaluation crop, Eigen on NYU: leaves out the image frame, see `depthscope probe`), full, or a box in "
        "pixels (default %(default)s)",
    )  # fmt: skip
    option_arg(p, "method or metric")
    for name in METRICS.names():
        cls = METRICS.get(name)
        better = {True: "higher is better", False: "lower is better", None: "a reference, no direction"}
        group = p.add_argument_group(f"metric {name} ({cls.category}; {better[cls.higher_is_better]})")
        preset = {k: (v, f"the {d.protocol} protocol") for k, v in PROTOCOLS[d.protocol].get(name, {}).items()}
        preset |= {k: (v, "this command's setting") for k, v in d.metric_options.get(name, {}).items()}
        add_config_args(group, cls.Config, prefix=f"{name}_", preset=preset)


def assess_config(args: argparse.Namespace):
    """The :class:`~depthscope.assess.AssessConfig` the parsed options describe."""
    from depthscope.assess import METRICS, AssessConfig

    metric_options = {}
    for name in METRICS.names():
        given = config_values(args, METRICS.get(name).Config, prefix=f"{name}_")
        if given:
            metric_options[name] = given
    config = AssessConfig(
        methods=args.methods, metrics=args.metrics, n_perturbations=args.n_perturbations, seed=args.seed,
        protocol=args.protocol, metric_options=metric_options, perturb_region=args.perturb_region,
    )  # fmt: skip
    return config.with_options(args.option)


@register_command
class Assess(Command):
    """How trustworthy are the attribution maps? Perturbation curves (MoRF/LeRF/random, RMSE in metres to the
    original prediction), Attribution Fidelity (af_perturbation, af_depth_correlation), Infidelity, Faithfulness
    Correlation, and the Quantus families (ROAD, insertion/deletion, Monotonicity Correlation, IROF, sensitivity,
    Local Lipschitz, relative stability, MPRT, sMPRT, eMPRT, random target, target share, sparseness, complexity)
    per model x method x image. Metrics not asked for (--metrics) cost nothing. Resumable: rerunning the
    same command skips finished rows.

    Writes DIR/results.csv (one row per model, method, image), DIR/settings.json, DIR/summary.csv (mean, std,
    direction and unit of each score) and DIR/curves.png.

    Example: depthscope assess --methods saliency,random --metrics curves,infidelity --option infidelity.sigma=0.02
    """

    name = "assess"
    help = "perturbation curves and Attribution Fidelity of attribution maps"

    def configure(self, p: argparse.ArgumentParser) -> None:
        model_args(p, many=True)
        data_args(p)
        p.add_argument("--limit", type=int, help="first N images only (default: all)")
        p.add_argument(
            "--dry-run", action="store_true",
            help="print the cost plan (forwards and backwards per phase, seconds measured on a probe of the first "
            "image, projected wall time) and exit without writing anything",
        )  # fmt: skip
        p.add_argument("--out", default="out/assess", help="output directory (default %(default)s)")
        force_new_arg(p)
        p.add_argument("--chunk-size", type=int, help="perturbed inputs per forward (default: the fastest, measured "
                       "once per model and kept in settings.json)")  # fmt: skip
        html_arg(p)
        engine_args(p)
        add_assess_config_args(p)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.assess import assess
        from depthscope.cli._args import split
        from depthscope.output.tables import format_table

        config = assess_config(args)  # every setting checked before a model loads
        engine = engine_from(args)
        if engine is not None and not args.dry_run:  # Ray's workers load the models and open the data themselves
            summary = assess(split(args.model), data_spec(args), config, args.out, limit=args.limit,
                             device=args.device, progress=True, weights=args.weights, engine=engine,
                             chunk_size=args.chunk_size, force_new=args.force_new)  # fmt: skip
            return self._show(args, config, summary, [])
        models = [load(args, name) for name in split(args.model)]
        data = open_data(args, models[0].info.eval.dataset)
        if args.dry_run:
            from depthscope.assess import plan

            total = 0.0
            for m in models:
                cost = plan(config, m, data, args.limit, args.device, chunk_size=args.chunk_size)
                cost.workers = 1 if engine is None else engine.workers  # projected as the run would spread it
                print(cost.summary())
                print(format_table(cost.rows(), digits=3))
                total += cost.seconds
            print(f"projected wall time: {total:.0f} s ({total / 60:.1f} min); nothing was written")
            return 0
        summary = assess(models, data, config, args.out, limit=args.limit, device=args.device, progress=True,
                         chunk_size=args.chunk_size, force_new=args.force_new)  # fmt: skip
        return self._show(args, config, summary, models)

    def _show(self, args: argparse.Namespace, config, summary: list, models: list) -> int:
        from depthscope.assess import display_summary
        from depthscope.output.tables import format_table

        print(format_table(display_summary(summary)))
        print(f"wrote {Path(args.out) / 'results.csv'}, summary.csv and curves.png")
        from depthscope.report.html import figure, score_table

        body = score_table(summary, config.descriptions()) + figure(
            Path(args.out) / "curves.png", "perturbation curves"
        )
        write_html(args, "assessment of attribution maps", body, config.to_dict(), models)
        return 0
