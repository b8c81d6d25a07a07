"""``depthscope optimize``: its options are generated from :class:`~depthscope.optimize.OptimizeConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import add_config_args, config_values
from depthscope.cli._base import Command, register_command


@register_command
class Optimize(Command):
    """A cheaper model from a trained one: efficient attention (meta: pooling mixer; pyra: spatial-reduction
    attention) trained by block-wise then end-to-end distillation, int8 post-training quantisation (CPU),
    structured channel pruning with distillation fine-tuning, or distillation into a --student. Training images are
    unlabeled (--train-images: 'builtin' photographs shipped by installed packages, a folder or a glob), never the
    evaluation data. Interrupted training resumes when the same command is run again.

    Writes DIR/model.safetensors (load it anywhere with --model DIR/model.safetensors) and DIR/optimize.json
    (params and MACs before/after, recipe, images, losses).

    Example: depthscope optimize --model meter-xxs-nyu --method pyra --steps 300 --e2e-steps 200 --out out/pyra
    """

    name = "optimize"
    help = "cheaper models: meta/pyra attention, int8, pruning, distillation"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.optimize import OPTIMIZERS, OptimizeConfig

        p.add_argument(
            "--model",
            default="meter-xxs-nyu",
            help="model (name or optimised .safetensors) to start from (default %(default)s)",
        )
        p.add_argument(
            "--weights",
            help="the model's weights from this file, or an optimised checkpoint made from --model (how one made "
            "from an entry point is optimised again)",
        )
        p.add_argument("--method", required=True, choices=OPTIMIZERS.names())
        p.add_argument("--out", required=True, help="output directory (also holds resumable training states)")
        add_config_args(p, OptimizeConfig)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.config import build_config
        from depthscope.optimize import OptimizeConfig, optimize

        cfg = build_config(OptimizeConfig, config_values(args, OptimizeConfig), "optimize")
        report = optimize(args.model, args.method, args.out, cfg, weights=args.weights)
        b, a = report["before"], report["after"]
        print(f"{report['model']}: params {b['params']:,} -> {a['params']:,} ({a['params_ratio']:.3f}x), "
              f"MACs {b['macs']:,} -> {a['macs']:,} ({a['macs_ratio']:.3f}x), "
              f"bytes {b['bytes']:,} -> {a['bytes']:,} ({a['bytes_ratio']:.3f}x)")  # fmt: skip
        print(f"wrote {report['checkpoint']} and {Path(args.out) / 'optimize.json'}")
        return 0
