"""``depthscope export``."""

from __future__ import annotations

import argparse

from depthscope.cli._args import model_args
from depthscope.cli._base import Command, register_command


@register_command
class Export(Command):
    """A model's network as an ONNX graph with a dynamic batch, for ONNX Runtime and the tools of deployment.

    The graph takes the preprocessed network input (B, 3, H, W) and returns the raw network output; the file's
    metadata records the model, weights, input size, normalisation and unit. The file is written only after ONNX
    Runtime's outputs on batches of 1 and 2 agree with PyTorch's to --rtol (max |difference| / max |output|).
    Time it with `depthscope profile --model M --backend onnxruntime --onnx FILE`.

    Example: depthscope export --model meter-xxs-nyu --format onnx --out out/meter-xxs-nyu.onnx
    """

    name = "export"
    help = "a model's network as an ONNX graph (dynamic batch, checked in ONNX Runtime)"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.efficiency.onnx import DEFAULT_RTOL

        model_args(p)
        p.add_argument("--format", default="onnx", choices=["onnx"], help="graph format (default %(default)s)")
        p.add_argument("--out", required=True, help="the file to write, e.g. out/model.onnx")
        p.add_argument(
            "--rtol", type=float, default=DEFAULT_RTOL, help="largest accepted relative error (default %(default)g)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.efficiency.onnx import export_onnx
        from depthscope.errors import InputError
        from depthscope.models import load_model, warn_if_untrained

        if not args.rtol > 0:
            raise InputError(f"--rtol must be > 0, got {args.rtol}")
        if args.device != "cpu":
            raise InputError("export runs the exporter and ONNX Runtime's check on the CPU: use --device cpu")
        model = load_model(args.model, weights=args.weights)
        warn_if_untrained(model, "the exported graph computes no trained model")
        info = export_onnx(model, args.out, rtol=args.rtol)
        print(f"{info['model']}: input (batch, 3, {', '.join(map(str, info['input_size']))}), opset {info['opset']}; "
              f"ONNX Runtime vs PyTorch on batches 1 and 2: max relative error {info['max_relative_error']:.2e}")  # fmt: skip
        print(f"wrote {info['path']}")
        return 0
