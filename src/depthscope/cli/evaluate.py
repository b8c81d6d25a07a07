"""``depthscope evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthscope.cli._args import (
    data_args,
    data_spec,
    engine_args,
    engine_from,
    html_arg,
    load,
    model_args,
    open_data,
    write_html,
)
from depthscope.cli._base import Command, register_command


@register_command
class Evaluate(Command):
    """Accuracy metrics of a model on a dataset (MAE, RMSE, AbsRel, delta1...; depth in metres), and with
    --metrics the groups depth papers now report: boundary (Depth Pro's boundary F1/recall), dbe (iBims-1 depth
    boundary errors), normals, pointcloud (Chamfer, F-score@tau), planarity (iBims-1), binned (per depth bin).

    Example: depthscope evaluate --model meter-xxs-nyu --data ../shared/data/nyu_sample --metrics standard,boundary,normals
    """

    name = "evaluate"
    help = "accuracy metrics of a model on a dataset"

    def configure(self, p: argparse.ArgumentParser) -> None:
        model_args(p)
        data_args(p)
        p.add_argument(
            "--crop", choices=["eigen", "garg", "eigen_kitti", "none"], help="evaluation crop (default: model's)"
        )
        p.add_argument("--min-depth", type=float, help="lower depth cap in metres (default 1e-3)")
        p.add_argument("--max-depth", type=float, help="upper depth cap in metres (NYU 10, KITTI 80)")
        p.add_argument("--median-scaling", action="store_true", help="scale each prediction by median(gt)/median(pred)")
        p.add_argument(
            "--align",
            choices=["none", "median", "lstsq-depth", "lstsq-disparity"],
            help="fit each prediction to its ground truth first: median scaling, or least-squares scale and shift in "
            "depth or disparity space (default: none for metric models; lstsq-disparity for disparity models such "
            "as Depth Anything relative or MiDaS/DPT; lstsq-depth for relative depth)",
        )
        p.add_argument(
            "--predictions", metavar="DIR",
            help="score the depth maps `depthscope predict` saved in DIR (<image>.npy in metres, else <image>.png "
            "16-bit) instead of running the model; the model's protocol still sets crop and depth caps",
        )  # fmt: skip
        p.add_argument(
            "--pred-scale", type=float,
            help="16-bit prediction value per metre (default: the depth_scale in DIR/predict.json, else 1000)",
        )  # fmt: skip
        p.add_argument("--limit", type=int, help="evaluate only the first N images (default: all)")
        p.add_argument(
            "--metrics", default="standard",
            help="metric groups: standard (the ten, always computed) and any of boundary, dbe, normals, pointcloud, "
            "planarity, binned (default %(default)s)",
        )  # fmt: skip
        p.add_argument(
            "--option", action="append", default=[], metavar="GROUP.KEY=VALUE",
            help="an option of a metric group, repeatable: pointcloud.tau=0.05 (m), pointcloud.max_points=10000, "
            "binned.bins=[0,2,4,6,10] (m), dbe.theta=10 (px)",
        )  # fmt: skip
        p.add_argument("--intrinsics", metavar="FX,FY,CX,CY",
                       help="the camera in pixels of the images, for normals, pointcloud and planarity (default: the "
                       "dataset's; NYU's is known)")  # fmt: skip
        p.add_argument("--fov", type=float, help="or a centred camera with this horizontal field of view (degrees)")
        html_arg(p)
        engine_args(p)
        p.add_argument(
            "--out",
            default="out/evaluate",
            help="output directory: metrics.json, per_image.csv, predictions/ (default %(default)s)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.config import group_options
        from depthscope.metrics import METRIC_NAMES
        from depthscope.metrics.evaluate import evaluate
        from depthscope.output.tables import format_table

        engine = engine_from(args)
        if engine is None:
            model = load(args, args.model)
            data = open_data(args, model.info.eval.dataset)
        else:  # Ray's workers load the model and open the data themselves
            model, data = args.model, data_spec(args)
        result = evaluate(
            model,
            data,
            weights=args.weights,
            engine=engine,
            device=args.device,
            crop=args.crop,
            min_depth=args.min_depth,
            max_depth=args.max_depth,
            median_scaling=args.median_scaling,
            align=args.align,
            out=args.out,
            limit=args.limit,
            progress=True,
            predictions=args.predictions,
            pred_scale=args.pred_scale,
            metrics=args.metrics,
            metric_options=group_options(args.option),
            intrinsics=args.intrinsics,
            fov=args.fov,
        )
        if result.metrics:
            rows = [{"model": result.model, "n": len(result.per_image), **result.metrics}]
            print(format_table(rows, ["model", "n", *METRIC_NAMES]))
            extra = [k for k in result.metrics if k not in METRIC_NAMES]
            if extra:
                print(format_table(rows, ["model", *extra]))
        else:
            print("no image had ground-truth depth: nothing scored; the predictions are saved")
        print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'per_image.csv'}")
        if result.metrics:
            from depthscope.report.html import accuracy_table

            row = {"model": result.model, "weights": result.settings["weights"], "n": len(result.per_image)}
            body = accuracy_table([{**row, **result.metrics}])
        else:
            body = "<p>No image had ground-truth depth: nothing was scored.</p>"
        # scored saved predictions: the model only set the protocol, its weights made none of the numbers
        shown = [] if args.predictions or engine is not None else [model]
        write_html(args, "accuracy (depth in metres)", body, result.to_dict(), shown)
        return 0
