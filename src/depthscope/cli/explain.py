"""``depthscope explain``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from depthscope.cli._args import html_arg, load, model_args, option_arg, split, write_html
from depthscope.cli._base import Command, register_command


@register_command
class Explain(Command):
    """Attribution maps of one image: which pixels drive the predicted depth of the target.

    Targets: mean (whole map, default) | box:y0,x0,y1,x1 | pixel:y,x | grid:G | near:Q | far:Q | mask:PATH.
    Writes DIR/<method>.npy (float32 |attribution|, HxW of the image; TxHxW for several targets),
    DIR/<method>_signed.npy, DIR/explain.png and DIR/explain.json (method settings, IG completeness error).

    Example: depthscope explain --image ../shared/data/nyu_sample/image_0.png --methods saliency,integrated_gradients
             --option integrated_gradients.tolerance=0.02
    """

    name = "explain"
    help = "attribution maps of one image (saliency, IG, rollout, ...)"

    def configure(self, p: argparse.ArgumentParser) -> None:
        from depthscope.explain import METHODS

        model_args(p)
        p.add_argument("--image", help="RGB image (default: the first image of the bundled NYU sample)")
        p.add_argument("--depth", help="ground-truth depth for the figure (PNG value / --depth-scale = metres)")
        p.add_argument(
            "--depth-scale", type=float, default=1000.0, help="depth PNG value / S = metres (default %(default)s)"
        )
        p.add_argument(
            "--methods",
            "--method",
            dest="methods",
            default="saliency,integrated_gradients,attention_rollout",
            help=f"comma-separated methods (registered: {', '.join(METHODS.names())}; default %(default)s)",
        )
        p.add_argument("--target", default="mean", help="what to explain (see above; default %(default)s)")
        p.add_argument(
            "--cell", type=int, default=0,
            help="which target of grid:G the figure draws (cells row-major; all are in the .npy; default %(default)s)",
        )  # fmt: skip
        p.add_argument("--seed", type=int, default=0, help="seed of the seeded methods (default %(default)s)")
        option_arg(p, "method")
        p.add_argument(
            "--sanity",
            action="store_true",
            help="also run the cascading model-parameter randomisation check (Adebayo et al.): blocks randomised "
            "from the output towards the input, Spearman and SSIM to the original map per block -> DIR/sanity.csv",
        )
        p.add_argument("--out", default="out/explain", help="output directory (default %(default)s)")
        html_arg(p)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.config import group_options
        from depthscope.data import read_depth
        from depthscope.data.sources import find_data
        from depthscope.errors import InputError
        from depthscope.explain import METHODS, explain, sanity_rows, save_explanation
        from depthscope.explain.api import as_batch
        from depthscope.output.tables import format_table

        model = load(args, args.model)
        image_path = Path(args.image) if args.image else find_data() / "image_0.png"
        depth_path = Path(args.depth) if args.depth else None
        if depth_path is not None and not depth_path.is_file():  # typed, so wanted: never silently left out
            raise InputError(f"--depth {depth_path}: no such file")
        if depth_path is None and not args.image:
            depth_path = image_path.with_name(image_path.name.replace("image_", "depth_"))
        methods = split(args.methods)
        options = group_options(args.option)
        x = as_batch(image_path, args.device)
        for name in methods:  # every name and option checked before the first map is computed
            METHODS.get(name).check_options(options.get(name, {}))
        stray = sorted(set(options) - set(methods))
        if stray:
            raise InputError(f"options given for methods not requested: {', '.join(stray)}")
        attrs = {}
        for name in methods:  # one line per method as it finishes: long maps (adaptive IG on a grid) show progress
            t0 = time.perf_counter()
            own = {name: options[name]} if name in options else None
            attrs |= explain(model, x, name, args.target, own, seed=args.seed)
            info = ", ".join(f"{k}={v}" for k, v in attrs[name].info.items() if k != "delta")
            print(f"{name:22s} {time.perf_counter() - t0:6.1f} s  {info}", flush=True)
        gt = read_depth(depth_path, args.depth_scale) if depth_path and depth_path.exists() else None
        save_explanation(args.out, model, image_path, attrs, args.target, gt, cell=args.cell)
        print(f"wrote {args.out}/explain.png and one .npy per method")
        from depthscope.report.html import figure, plain_table

        info = [{"method": n, **{k: v for k, v in a.info.items() if k != "delta"}} for n, a in attrs.items()]
        body = figure(Path(args.out) / "explain.png", f"{image_path.name}, target {args.target}") + plain_table(info)
        if args.sanity:
            rows = sanity_rows(model, x, methods, args.target, options, out=args.out)
            print(format_table(rows, ["method", "block", "spearman", "ssim"], digits=3))
            print(f"wrote {args.out}/sanity.csv")
            body += "<h3>Sanity check (cascading randomisation)</h3>" + plain_table(rows)
        write_html(args, "explanation", body, {"methods": methods, "options": options, "target": args.target},
                   [model])  # fmt: skip
        return 0
