"""``depthscope profile``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import html_arg, model_args, split, split_ints, write_html
from depthscope.cli._base import Command, register_command


@register_command
class Profile(Command):
    """Cost of each model: parameters and bytes by dtype, MACs and FLOPs (FLOPs = 2 x MACs; convolutions, linear
    layers and attention matmuls), peak activation memory, latency (warm-up, repeats, median and p90; CUDA timed
    with events after synchronising) and throughput by batch size. Needs no weights: models are built with
    random weights unless --pretrained.

    Writes DIR/profile.json: per model params, macs, flops, param_bytes, peak_memory_bytes, latency_ms_median,
    latency_ms_p90, device, threads, input_size (and explain_seconds with --explain-methods).

    Example: depthscope profile --model meter-xxs-nyu,meter-xs,meter-s --input-size 192 256 --out out/profile
    """

    name = "profile"
    help = "params, MACs/FLOPs, memory, latency and throughput of models"

    def configure(self, p: argparse.ArgumentParser) -> None:
        model_args(p, many=True)
        p.add_argument(
            "--input-size",
            type=int,
            nargs=2,
            metavar=("H", "W"),
            help="image size fed to the model, which resizes it to its network input as it does for real images "
            "(recorded as network_input_size); default: the network's own input size, or its input crop's (KITTI)",
        )
        p.add_argument("--pretrained", action="store_true", help="load the weights too (costs do not depend on them)")
        p.add_argument(
            "--counts-only",
            action="store_true",
            help="only params, bytes and MACs/FLOPs, computed on the meta device: no weights are allocated and "
            "nothing runs, so a 270M-parameter model is counted in seconds (no memory, latency or throughput)",
        )
        p.add_argument("--warmup", type=int, default=5, help="untimed forwards before timing (default %(default)s)")
        p.add_argument("--repeats", type=int, default=20, help="timed forwards (default %(default)s)")
        p.add_argument("--batches", default="1,2,4,8", help="batch sizes for throughput (default %(default)s)")
        p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
        p.add_argument(
            "--explain-methods", default="", help="also time one map of each of these methods (default: none)"
        )
        p.add_argument(
            "--backend",
            default="torch",
            help="comma-separated runtimes: torch (default), onnxruntime (the network alone, exported to ONNX and "
            "timed on ONNX Runtime's CPU execution provider beside eager PyTorch, same input and threads)",
        )
        p.add_argument("--onnx", help="with --backend onnxruntime and one model: time this exported file instead")
        p.add_argument("--out", default="out/profile", help="output directory (default %(default)s)")
        html_arg(p)

    def run(self, args: argparse.Namespace) -> int:
        import torch

        from depthscope.efficiency import profile
        from depthscope.errors import InputError
        from depthscope.models import load_model
        from depthscope.output.tables import format_table

        if args.threads is not None:
            if args.threads < 1:
                raise InputError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        # an explicit checkpoint is meant to be loaded; an ONNX file computes trained weights, checked against the model's
        pretrained = args.pretrained or args.weights is not None or args.onnx is not None
        device = "meta" if args.counts_only else args.device
        backends = split(args.backend)
        if args.onnx and "onnxruntime" not in backends:
            raise InputError("--onnx FILE is timed by --backend onnxruntime; add it")
        if args.onnx and len(split(args.model)) != 1:
            raise InputError("--onnx FILE is one model's graph: give one --model")
        if "onnxruntime" in backends and args.counts_only:
            raise InputError("--backend onnxruntime times the graph; it cannot be combined with --counts-only")
        models = [load_model(n, weights=args.weights, device=device, pretrained=pretrained) for n in split(args.model)]
        rows = profile(
            models,
            args.out,
            tuple(args.input_size) if args.input_size else None,
            warmup=args.warmup,
            repeats=args.repeats,
            batches=split_ints(args.batches, "--batches"),
            explain_methods=split(args.explain_methods),
            counts_only=args.counts_only,
            backends=backends,
            onnx=args.onnx,
        )
        cols = ["model", "params", "macs", "flops"]
        if not args.counts_only:
            cols += ["peak_memory_bytes", "latency_ms_median", "latency_ms_p90", "device"]
        print(format_table(list(rows.values()), cols))
        if "onnxruntime" in backends:
            net_cols = ["model", "net_latency_ms_median", "onnxruntime_latency_ms_median", "onnxruntime_speedup",
                        "onnxruntime_max_relative_error"]  # fmt: skip
            print(f"network alone, {torch.get_num_threads()} threads (eager PyTorch | ONNX Runtime CPU):")
            print(format_table(list(rows.values()), net_cols))
        print("FLOPs = 2 x MACs; weights:", next(iter(rows.values()))["weights"])
        print(f"wrote {Path(args.out) / 'profile.json'}")
        from depthscope.report.html import plain_table

        write_html(args, "costs", plain_table(list(rows.values())), {"counts_only": args.counts_only})
        return 0
