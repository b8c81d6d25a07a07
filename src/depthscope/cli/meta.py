"""``depthscope meta-evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import data_args, force_new_arg, html_arg, load, model_args, open_data, write_html
from depthscope.cli._base import Command, register_command


@register_command
class MetaEvaluate(Command):
    """Which assessment scores to trust for this model? Every metric with a direction is computed on the images
    and again under minor perturbations (noise on the image, noise on the weights, each moving the mean depth by
    less than --tolerance) and disruptive ones (maps of a model whose output half is randomised, maps shuffled,
    maps inverted). Per metric: noise resilience and adversarial reactivity as MetaQuantus' intra-consistency
    (Wilcoxon p-values) and inter-consistency (method order kept; scores got worse), their mean (MC score), and
    the reliability of its method ranking across images (Krippendorff's alpha) and with the other metrics (rank
    agreement; Cronbach's alpha of all metrics as one scale). Resumable: rerunning skips finished assessments.
    Each assessment is repeated 1 + tests x repeats times, so the costliest metrics run cheaper than the defaults
    --help lists for assess: 4 draws for sensitivity, local_lipschitz and relative_stability, 2 noise draws for
    monotonicity_correlation, 30 superpixels for irof, 64 draws for infidelity and faithfulness_correlation
    (a flag or --option given here overrides them).

    Writes DIR/scores.csv (every score), DIR/meta.csv (one row per metric), DIR/meta_tests.csv (per metric and
    test), DIR/reliability.json, DIR/plan.json (every metric's measured cost) and DIR/settings.json.

    Example: depthscope meta-evaluate --model meter-xxs-nyu --data ../shared/data/nyu_sample --limit 3
    """

    name = "meta-evaluate"
    help = "which assessment scores to trust for a model: metric resilience, reactivity and reliability"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.cli.assess import add_assess_config_args
        from depthscope.meta import TESTS, MetaConfig
        from depthscope.meta.run import default_assess_config

        d = MetaConfig()
        model_args(p)
        data_args(p)
        p.add_argument("--limit", type=int, help="first N images only (default: all)")
        p.add_argument("--tests", default=",".join(d.tests),
                       help=f"meta-evaluation tests (registered: {', '.join(TESTS.names())}; default: all)")  # fmt: skip
        p.add_argument(
            "--repeats", type=int, default=d.repeats, help="draws of each test per image (default %(default)s)"
        )
        p.add_argument("--tolerance", type=float, default=d.tolerance,
                       help="a minor test moves the mean depth by at most this share (default %(default)s)")  # fmt: skip
        p.add_argument("--dry-run", action="store_true",
                       help="assess the first image once (timing every metric), print the plan and stop")  # fmt: skip
        p.add_argument("--out", default="out/meta", help="output directory (default %(default)s)")
        force_new_arg(p)
        html_arg(p)
        add_assess_config_args(p, default_assess_config())

    def run(self, args: argparse.Namespace) -> int:
        import dataclasses

        from depthscope.cli._args import split
        from depthscope.cli.assess import assess_config
        from depthscope.meta import MetaConfig, display_meta, meta_evaluate
        from depthscope.meta.run import META_METRIC_OPTIONS
        from depthscope.output.tables import format_table

        given = assess_config(args)
        options = {m: {**META_METRIC_OPTIONS.get(m, {}), **given.metric_options.get(m, {})} for m in given.metrics}
        config = MetaConfig(dataclasses.replace(given, metric_options={m: o for m, o in options.items() if o}),
                            tuple(split(args.tests)), args.repeats, args.tolerance, args.seed)  # fmt: skip
        model = load(args, args.model)
        data = open_data(args, model.info.eval.dataset)
        res = meta_evaluate(model, data, config, args.out, args.limit, progress=True, force_new=args.force_new,
                            dry_run=args.dry_run)  # fmt: skip
        if args.dry_run:
            return 0
        shown = display_meta(res.rows)
        print(format_table(shown))
        print(f"Cronbach's alpha of the {len(res.rows)} metrics as one scale: {res.cronbach_alpha:.2f}")
        print(f"wrote {Path(args.out) / 'meta.csv'}, meta_tests.csv, scores.csv, reliability.json and plan.json")
        from depthscope.report.html import plain_table

        write_html(args, "which scores to trust", plain_table(shown), config.settings(), [model])
        return 0
