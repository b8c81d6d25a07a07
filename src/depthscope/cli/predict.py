"""``depthscope predict``."""

from __future__ import annotations

import argparse

from depthscope.cli._args import force_new_arg, html_arg, load, model_args, write_html
from depthscope.cli._base import Command, register_command


@register_command
class Predict(Command):
    """Depth of images without ground truth, saved in standard encodings, mirroring the input folders:
    OUT/<key>.npy (float32 metres), OUT/<key>.png (16-bit, value = metres x --depth-scale, clipped and counted,
    never wrapped; `evaluate --predictions OUT` reads it back), OUT/<key>_color.png (preview with a colourbar in
    metres), OUT/<key>.ply (binary PLY of coloured points in metres, from --intrinsics or --fov), plus
    OUT/predictions.csv and OUT/predict.json. Resumable: images whose files all exist are skipped.

    Example: depthscope predict --images ../shared/data/nyu_sample --out out/pred --format npy,png16,color,ply
             --intrinsics 518.86,519.47,325.58,253.74
    """

    name = "predict"
    help = "depth of images without ground truth: .npy, 16-bit PNG, colour preview, PLY point cloud"

    def configure(self, p: argparse.ArgumentParser) -> None:
        model_args(p)
        p.add_argument(
            "--images", required=True,
            help="a folder (searched recursively; in an image_<id>/depth_<id> folder only the images), a quoted "
            "glob such as 'frames/*.jpg', one image or video file (video: pip install -e \".[video]\"), or a CSV "
            "whose first column lists image paths",
        )  # fmt: skip
        p.add_argument("--out", required=True, help="output folder (not inside --images)")
        p.add_argument(
            "--format", default="npy,png16",
            help="comma-separated: npy, png16, color, ply (default %(default)s)",
        )  # fmt: skip
        p.add_argument(
            "--depth-scale", type=float, default=1000.0,
            help="16-bit PNG value per metre (1000 = millimetres as NYU, 256 as KITTI; default %(default)g)",
        )  # fmt: skip
        cam = p.add_mutually_exclusive_group()
        cam.add_argument("--intrinsics", metavar="FX,FY,CX,CY", help="pinhole intrinsics in pixels, for ply")
        cam.add_argument(
            "--fov", type=float, metavar="DEG", help="horizontal field of view of a centred camera, for ply"
        )
        p.add_argument("--batch", type=int, default=1, help="images per forward pass (default %(default)s)")
        force_new_arg(p)
        html_arg(p)

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.predict import predict

        model = load(args, args.model)
        res = predict(
            model, args.images, args.out, args.format, args.depth_scale, args.intrinsics, args.fov,
            batch=args.batch, device=args.device, progress=True, force_new=args.force_new,
        )  # fmt: skip
        done = f"predicted {res.written} image(s)" + (f", {res.skipped} already done" if res.skipped else "")
        print(f"{done} in {res.seconds:.1f} s; depth unit: {res.unit}; wrote {res.out}")
        if args.html:
            import csv
            from pathlib import Path

            from depthscope.report.html import esc, figure, plain_table

            rows = list(csv.DictReader(open(res.out / "predictions.csv")))
            body = (
                f"<p>{len(rows)} images; depth unit {esc(res.unit)}; {res.png16_clipped} pixels clipped in png16.</p>"
            )
            body += "".join(figure(res.out / f"{r['image']}_color.png", r["image"]) for r in rows[:6]
                            if (Path(res.out) / f"{r['image']}_color.png").is_file())  # fmt: skip
            body += plain_table(rows)
            if res.failed:
                body += "<h3>Unreadable inputs</h3>" + plain_table([{"file": f, "reason": r} for f, r in res.failed])
            write_html(args, "predictions", body, {"formats": args.format, "depth_scale": args.depth_scale},
                       [model])  # fmt: skip
        if res.failed:
            print(f"{len(res.failed)} input(s) could not be read (listed above); the others are done")
            return 1
        return 0
