"""``depthscope view``."""

from __future__ import annotations

import argparse

from depthscope.cli._args import data_args, load, model_args, open_data, split
from depthscope.cli._base import Command, register_command


@register_command
class View(Command):
    """The explorer in the browser: click a pixel of the predicted depth, drag or type a box, or pick mean /
    near / far / a grid cell, and see every chosen method's map of that target on one scale; the curves and both
    AF readings on demand; two models side by side (e.g. a model and its int8 or pruned checkpoint) with their
    agreement; "copy as command" and downloads. Needs the [view] extra (pip install -e ".[view]", Gradio); runs
    offline and binds 127.0.0.1 unless --host says otherwise.

    Example: depthscope view --model meter-xxs-nyu,runs/opt/int8/model.safetensors --data ../shared/data/nyu_sample
    """

    name = "view"
    help = "interactive explorer in the browser (click a pixel, drag a box)"

    def configure(self, p: argparse.ArgumentParser) -> None:
        model_args(p, many=True)
        data_args(p)
        p.add_argument("--host", default="127.0.0.1", help="interface to bind (default %(default)s: this machine only)")
        p.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
        p.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                       help="a folder whose optimised .safetensors checkpoints the page's 'compare with' box may load "
                       "(repeatable; default: the current directory). The page never loads entry points or hf: "
                       "folders: type those here, in --model")  # fmt: skip
        p.add_argument("--auth", metavar="USER:PASSWORD",
                       help="ask for this login on the page and its HTTP API (advised with a --host beyond "
                       "127.0.0.1; also read from DEPTHSCOPE_VIEW_AUTH, which keeps it out of the process list)")  # fmt: skip

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.errors import InputError

        try:
            from depthscope.view import app, serve
            from depthscope.view.web import parse_auth
        except ImportError as e:
            raise InputError(f'depthscope view needs Gradio: pip install -e ".[view]" ({e})') from None
        names = split(args.model)
        if not 1 <= len(names) <= 2:
            raise InputError(f"--model takes one or two models for the explorer, got {len(names)}")
        if not 1 <= args.port <= 65535:
            raise InputError(f"--port must be 1..65535, got {args.port}")
        import os

        auth = parse_auth(args.auth or os.environ.get("DEPTHSCOPE_VIEW_AUTH"))
        for d in args.models_dir:
            if not os.path.isdir(d):
                raise InputError(f"--models-dir {d}: no such folder")
        models = [load(args, name) for name in names]
        data = open_data(args, models[0].info.eval.dataset)
        print(f"depthscope view: http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
        serve(app(models, data, args.device, args.models_dir or None), args.host, args.port, block=True, auth=auth)
        return 0
