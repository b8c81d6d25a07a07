"""``depthscope`` command line: every command is a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from depthscope.assess.fidelity import (
    DEFAULT_INFIDELITY_SIGMA,
    DEFAULT_N_PERTURBATIONS,
    DEFAULT_SYMMETRIC_INFIDELITY,
)
from depthscope.errors import DepthscopeError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str):  # noqa: A002
    """Register ``(configure_parser, run)`` for a sub-command."""

    def deco(pair):
        COMMANDS[name] = pair
        pair[0].__doc__ = pair[0].__doc__ or help
        pair[0].help = help  # type: ignore[attr-defined]
        return pair

    return deco


def _model_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    from depthscope.models import list_models

    p.add_argument(
        "--model",
        default="meter-xxs-nyu",
        help=("comma-separated model names" if many else "model name")
        + f" (registered: {', '.join(list_models())}; or package.module:function returning depthscope.wrap(...);"
        " default meter-xxs-nyu)",
    )
    p.add_argument("--weights", help="explicit checkpoint file (.pth/.pt/.safetensors) instead of the weight lookup")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")


def _data_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        help="dataset folder, CSV of pairs, NYU labeled .mat or KITTI root (default: the bundled NYU sample, "
        "found through DEPTHSCOPE_DATA or ../shared/data)",
    )
    p.add_argument("--dataset", choices=["nyu", "kitti", "pairs"], help="layout/protocol (default: the model's)")
    p.add_argument("--depth-scale", type=float, help="integer depth PNG value / S = metres (nyu 1000, kitti 256)")
    p.add_argument("--split-file", help="KITTI Eigen list (BTS format) or NYU splits.mat")


def _open_data(args: argparse.Namespace, model_dataset: str):
    from depthscope.data import open_dataset
    from depthscope.data.sources import find_data

    return open_dataset(args.data or find_data(), args.dataset or model_dataset, args.depth_scale, args.split_file)


def _load(args: argparse.Namespace, name: str):
    from depthscope.models import load_model

    return load_model(name, weights=args.weights, device=args.device)


# ----------------------------------------------------------------------------------------------------- evaluate
def _evaluate_parser(p: argparse.ArgumentParser) -> None:
    """Accuracy metrics of a model on a dataset (MAE, RMSE, AbsRel, delta1...; depth in metres).

    Example: depthscope evaluate --model meter-xxs-nyu --data ../shared/data/nyu_sample --crop eigen --out out/eval
    """
    _model_args(p)
    _data_arg(p)
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
        "depth or disparity space (default: none for metric models; lstsq-disparity for disparity models such as "
        "Depth Anything relative or MiDaS/DPT; lstsq-depth for relative depth)",
    )
    p.add_argument("--limit", type=int, help="evaluate only the first N images")
    p.add_argument("--out", default="out/evaluate", help="output directory (metrics.json, per_image.csv)")


def _evaluate_run(args: argparse.Namespace) -> int:
    from depthscope.metrics import METRIC_NAMES
    from depthscope.metrics.evaluate import evaluate
    from depthscope.report.tables import format_table

    model = _load(args, args.model)
    result = evaluate(
        model,
        _open_data(args, model.info.eval.dataset),
        crop=args.crop,
        min_depth=args.min_depth,
        max_depth=args.max_depth,
        median_scaling=args.median_scaling,
        align=args.align,
        out=args.out,
        limit=args.limit,
        progress=True,
    )
    print(
        format_table(
            [{"model": result.model, "n": len(result.per_image), **result.metrics}], ["model", "n", *METRIC_NAMES]
        )
    )
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'per_image.csv'}")
    return 0


command("evaluate", "accuracy metrics of a model on a dataset")((_evaluate_parser, _evaluate_run))


# ------------------------------------------------------------------------------------------------------ explain
def _explain_parser(p: argparse.ArgumentParser) -> None:
    """Attribution maps of one image: which pixels drive the predicted depth of the target.

    Targets: mean (whole map, default) | box:y0,x0,y1,x1 | pixel:y,x | grid:G | near:Q | far:Q | mask:PATH.
    Writes DIR/<method>.npy (float32 |attribution|, HxW of the image; TxHxW for several targets),
    DIR/<method>_signed.npy, DIR/explain.png and DIR/explain.json (method settings, IG completeness error).

    Example: depthscope explain --image ../shared/data/nyu_sample/image_0.png --method saliency,integrated_gradients
    """
    from depthscope.explain import METHODS

    _model_args(p)
    p.add_argument("--image", help="RGB image (default: the first image of the bundled NYU sample)")
    p.add_argument("--depth", help="ground-truth depth for the figure (PNG value / --depth-scale = metres)")
    p.add_argument("--depth-scale", type=float, default=1000.0, help="depth PNG value / S = metres (default 1000)")
    p.add_argument(
        "--method",
        default="saliency,integrated_gradients,attention_rollout",
        help=f"comma-separated methods (registered: {', '.join(METHODS.names())})",
    )
    p.add_argument("--target", default="mean", help="what to explain (see above; default mean)")
    p.add_argument("--ig-steps", type=int, default=50, help="Integrated Gradients steps (start, with --ig-tolerance)")
    p.add_argument(
        "--ig-tolerance", type=float, help="refine IG until the completeness error is below this (e.g. 0.02)"
    )
    p.add_argument("--ig-baseline", default="black", choices=["black", "mean", "blur", "noise"])
    p.add_argument("--gradcam-layer", default="encoder.conv2", help="module name for Grad-CAM")
    p.add_argument(
        "--sanity",
        action="store_true",
        help="also run the cascading model-parameter randomisation check (Adebayo et al.): blocks randomised "
        "from the output towards the input, Spearman and SSIM to the original map per block -> DIR/sanity.csv",
    )
    p.add_argument("--out", default="out/explain", help="output directory")


def _explain_run(args: argparse.Namespace) -> int:
    import io
    import json

    import numpy as np
    import torch

    from depthscope.data import read_depth
    from depthscope.data.sources import find_data
    from depthscope.explain import explain
    from depthscope.explain.api import as_batch
    from depthscope.report.figures import explanation_figure
    from depthscope.report.files import write_atomic, write_json

    model = _load(args, args.model)
    image_path = Path(args.image) if args.image else find_data() / "image_0.png"
    depth_path = Path(args.depth) if args.depth else None
    if depth_path is None and not args.image:
        depth_path = image_path.with_name(image_path.name.replace("image_", "depth_"))
    x = as_batch(image_path, args.device)
    methods = [m.strip() for m in args.method.split(",")]
    options = {
        "integrated_gradients": {
            "n_steps": args.ig_steps,
            "tolerance": args.ig_tolerance,
            "baseline": args.ig_baseline,
        },
        "gradcam": {"layer": args.gradcam_layer},
    }
    attrs = explain(model, x, methods, args.target, {k: v for k, v in options.items() if k in methods})
    out = Path(args.out)
    info = {"model": model.name, "image": str(image_path), "target": args.target, "methods": {}}
    for name, a in attrs.items():
        for suffix, arr in (("", a.magnitude), ("_signed", a.signed)):
            arr = arr[0] if arr.shape[0] == 1 else arr
            buf = io.BytesIO()
            np.save(buf, arr.cpu().numpy().astype(np.float32))
            write_atomic(out / f"{name}{suffix}.npy", buf.getvalue())
        info["methods"][name] = {k: v for k, v in a.info.items()}
        print(f"{name:22s} " + ", ".join(f"{k}={v}" for k, v in a.info.items() if k != "delta"))
    with torch.no_grad():
        pred = model(x)[0, 0]
    gt = read_depth(depth_path, args.depth_scale) if depth_path and depth_path.exists() else None
    explanation_figure(
        x[0],
        pred,
        {n: a.magnitude[0] for n, a in attrs.items()},
        out / "explain.png",
        gt,
        title=f"{model.name} · target {args.target}",
    )
    write_json(out / "explain.json", json.loads(json.dumps(info, default=str)))
    print(f"wrote {out}/explain.png and one .npy per method")
    if args.sanity:
        from depthscope.explain.sanity import cascading_randomization
        from depthscope.report.files import write_csv
        from depthscope.report.tables import format_table

        rows = []
        for name in methods:
            opts = {k: v for k, v in options.get(name, {}).items() if v is not None}
            for r in cascading_randomization(model, x, name, args.target, opts):
                rows.append({"method": name, **r})
        write_csv(out / "sanity.csv", rows)
        print(format_table(rows, ["method", "block", "spearman", "ssim"], digits=3))
        print(f"wrote {out}/sanity.csv")
    return 0


command("explain", "attribution maps of one image (saliency, IG, rollout, ...)")((_explain_parser, _explain_run))


# ------------------------------------------------------------------------------------------------------ profile
def _profile_parser(p: argparse.ArgumentParser) -> None:
    """Cost of each model: parameters and bytes by dtype, MACs and FLOPs (FLOPs = 2 x MACs; convolutions, linear
    layers and attention matmuls), peak activation memory, latency (warm-up, repeats, median and p90; CUDA timed
    with events after synchronising) and throughput by batch size. Needs no weights: models are built with
    random weights unless --pretrained.

    Writes DIR/profile.json: per model params, macs, flops, param_bytes, peak_memory_bytes, latency_ms_median,
    latency_ms_p90, device, threads, input_size (and explain_seconds with --explain-methods).

    Example: depthscope profile --model meter-xxs-nyu,meter-xs,meter-s --input-size 192 256 --out out/profile
    """
    _model_args(p, many=True)
    p.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="image size fed to the model, which resizes it to its network input as it does for real images "
        "(recorded as network_input_size); default: the network's own input size",
    )
    p.add_argument("--pretrained", action="store_true", help="load the weights too (costs do not depend on them)")
    p.add_argument(
        "--counts-only",
        action="store_true",
        help="only params, bytes and MACs/FLOPs, computed on the meta device: no weights are allocated and nothing "
        "runs, so a 270M-parameter model is counted in seconds (no memory, latency or throughput)",
    )
    p.add_argument("--warmup", type=int, default=5, help="untimed forwards before timing")
    p.add_argument("--repeats", type=int, default=20, help="timed forwards")
    p.add_argument("--batches", default="1,2,4,8", help="batch sizes for throughput")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument("--explain-methods", default="", help="also time one map of each of these methods")
    p.add_argument("--out", default="out/profile", help="output directory")


def _profile_run(args: argparse.Namespace) -> int:
    import torch

    from depthscope.efficiency import profile
    from depthscope.models import load_model
    from depthscope.report.tables import format_table

    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.model.split(",")]
    pretrained = args.pretrained or args.weights is not None  # an explicit checkpoint is meant to be loaded
    device = "meta" if args.counts_only else args.device
    models = [load_model(n, weights=args.weights, device=device, pretrained=pretrained) for n in names]
    rows = profile(
        models,
        args.out,
        tuple(args.input_size) if args.input_size else None,
        warmup=args.warmup,
        repeats=args.repeats,
        batches=[int(b) for b in args.batches.split(",")],
        explain_methods=[m.strip() for m in args.explain_methods.split(",") if m.strip()],
        counts_only=args.counts_only,
    )
    cols = ["model", "params", "macs", "flops"]
    if not args.counts_only:
        cols += ["peak_memory_bytes", "latency_ms_median", "latency_ms_p90", "device"]
    print(format_table(list(rows.values()), cols))
    print("FLOPs = 2 x MACs; weights:", next(iter(rows.values()))["weights"])
    print(f"wrote {Path(args.out) / 'profile.json'}")
    return 0


command("profile", "params, MACs/FLOPs, memory, latency and throughput of models")((_profile_parser, _profile_run))


# ------------------------------------------------------------------------------------------------------- pareto
def _pareto_parser(p: argparse.ArgumentParser) -> None:
    """Pareto frontier of models over two metrics (lower is better), e.g. latency against RMSE, and each model's
    EER (Efficient Error Rate: mean of model/reference over the --eer-metrics) against --reference.

    Writes DIR/pareto.csv (model, x, y, on_frontier, eer) and DIR/pareto.png (the frontier drawn).

    Example: depthscope pareto --profile out/profile/profile.json --metrics out/eval/metrics.json
             --x latency_ms_median --y rmse --reference meter-xxs-nyu --out out/pareto
    """
    from depthscope.efficiency.run import DEFAULT_EER_METRICS

    p.add_argument("--profile", required=True, help="profile.json written by `depthscope profile`")
    p.add_argument("--metrics", nargs="*", default=[], help="metrics.json files written by `depthscope evaluate`")
    p.add_argument("--x", default="latency_ms_median", help="x metric (default latency_ms_median)")
    p.add_argument("--y", default="rmse", help="y metric (default rmse)")
    p.add_argument("--reference", help="model name to compute every model's EER against")
    p.add_argument("--eer-metrics", default=",".join(DEFAULT_EER_METRICS), help="comma-separated EER metrics")
    p.add_argument("--out", default="out/pareto", help="output directory")


def _pareto_run(args: argparse.Namespace) -> int:
    from depthscope.efficiency import pareto
    from depthscope.report.tables import format_table

    table = pareto(
        args.profile,
        args.metrics,
        args.x,
        args.y,
        args.out,
        reference=args.reference,
        eer_metrics=[m.strip() for m in args.eer_metrics.split(",")],
    )
    print(format_table(table))
    print(f"wrote {Path(args.out) / 'pareto.csv'} and pareto.png")
    return 0


command("pareto", "Pareto frontier over two metrics, and EER against a reference")((_pareto_parser, _pareto_run))


# ------------------------------------------------------------------------------------------------------- assess
def add_infidelity_args(p: argparse.ArgumentParser) -> None:
    """The Infidelity estimator's options (also used by benchmarks/perturbation_count.py)."""
    p.add_argument(
        "--infidelity-sigma",
        type=float,
        default=DEFAULT_INFIDELITY_SIGMA,
        help="std of the Infidelity noise in units of the [0, 1] pixel range (default %(default)s)",
    )
    p.add_argument(
        "--symmetric-infidelity",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_SYMMETRIC_INFIDELITY,
        help="Infidelity on the odd part (f(x+I) - f(x-I)) / 2 of the response (2x forwards): drops the even part "
        "no attribution can explain (default: %(default)s)",
    )
    p.add_argument(
        "--infidelity-control-variate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="estimate Infidelity with the target's gradient as a control variate (one backward pass; same "
        "expectation, narrower CI); --no-infidelity-control-variate gives Captum's plain Monte Carlo (default: "
        "%(default)s)",
    )


def _assess_parser(p: argparse.ArgumentParser) -> None:
    """How trustworthy are the attribution maps? Perturbation curves (MoRF/LeRF/random, RMSE in metres to the
    original prediction), Attribution Fidelity (af_perturbation, af_depth_correlation), Infidelity, Faithfulness
    Estimate, per model x method x image. Resumable: rerunning the same command skips finished rows.

    Writes DIR/results.csv (one row per model, method, image), DIR/summary.csv (mean and std) and DIR/curves.png.
    """
    _model_args(p, many=True)
    _data_arg(p)
    p.add_argument(
        "--methods",
        default="saliency,integrated_gradients,attention_rollout,random",
        help="comma-separated attribution methods",
    )
    p.add_argument("--limit", type=int, help="first N images only")
    p.add_argument("--replacement", default="mean", choices=["mean", "black", "blur", "noise"])
    p.add_argument("--patch", type=int, default=1, help="perturbation granularity in pixels (1 = pixel)")
    p.add_argument(
        "--n-perturbations",
        type=int,
        default=DEFAULT_N_PERTURBATIONS,
        help="random draws for Infidelity/Faithfulness (default: the count chosen by benchmarks/perturbation_count.py)",
    )
    add_infidelity_args(p)
    p.add_argument("--ig-steps", type=int, default=16, help="Integrated Gradients steps")
    p.add_argument("--out", default="out/assess", help="output directory")


def _assess_run(args: argparse.Namespace) -> int:
    from depthscope.assess import assess

    models = [_load(args, name.strip()) for name in args.model.split(",")]
    data = _open_data(args, models[0].info.eval.dataset)
    summary = assess(
        models,
        data,
        [m.strip() for m in args.methods.split(",")],
        args.out,
        limit=args.limit,
        replacement=args.replacement,
        patch=args.patch,
        n_perturbations=args.n_perturbations,
        method_options={"integrated_gradients": {"n_steps": args.ig_steps}},
        device=args.device,
        progress=True,
        symmetric_infidelity=args.symmetric_infidelity,
        infidelity_sigma=args.infidelity_sigma,
        infidelity_control_variate=args.infidelity_control_variate,
    )
    print(summary_table(summary))
    print(f"wrote {Path(args.out) / 'results.csv'}, summary.csv and curves.png")
    return 0


def summary_table(summary: list[dict]) -> str:
    from depthscope.assess.run import SCORES
    from depthscope.report.tables import fmt, format_table

    rows = [
        {
            "model": r["model"],
            "method": r["method"],
            "n": r["n_images"],
            # fmt: infidelity is in m^2 and ~1e-6 at the default noise std, so fixed decimals would print 0.000
            **{s: f"{fmt(r[s + '_mean'], 3)} ± {fmt(r[s + '_std'], 3)}" for s in SCORES},
        }
        for r in summary
    ]
    return format_table(rows)


command("assess", "perturbation curves and Attribution Fidelity of attribution maps")((_assess_parser, _assess_run))


# ------------------------------------------------------------------------------------------------------- report
def _report_parser(p: argparse.ArgumentParser) -> None:
    """The main job in one command: metrics on the dataset, an explanation figure of its first image, and the
    assessment table, gathered in DIR/report.html (self-contained). Defaults: METER-XXS on the bundled NYU sample.
    """
    _model_args(p)
    _data_arg(p)
    p.add_argument("--methods", default="saliency,integrated_gradients,attention_rollout,random")
    p.add_argument("--limit", type=int, default=3, help="images to assess (evaluation uses all; default 3)")
    p.add_argument(
        "--n-perturbations", type=int, default=DEFAULT_N_PERTURBATIONS, help="random draws for Infidelity/Faithfulness"
    )
    p.add_argument("--out", default="runs/demo", help="output directory")


def _report_run(args: argparse.Namespace) -> int:
    import torch

    from depthscope.assess import assess
    from depthscope.explain import explain
    from depthscope.metrics import METRIC_NAMES
    from depthscope.metrics.evaluate import evaluate
    from depthscope.report.figures import explanation_figure
    from depthscope.report.html import write_report
    from depthscope.report.tables import format_table

    out = Path(args.out)
    model = _load(args, args.model)
    data = _open_data(args, model.info.eval.dataset)
    methods = [m.strip() for m in args.methods.split(",")]
    result = evaluate(model, data, out=out / "evaluate", progress=True)
    metrics_rows = [{"model": result.model, "n": len(result.per_image), **result.metrics}]
    print(format_table(metrics_rows, ["model", "n", *METRIC_NAMES]))
    first = data[0]
    attrs = explain(
        model,
        first.image,
        methods,
        "mean",
        {"integrated_gradients": {"n_steps": 24, "tolerance": 0.02}} if "integrated_gradients" in methods else None,
    )
    with torch.no_grad():
        pred = model(first.image.unsqueeze(0))[0, 0]
    fig = explanation_figure(
        first.image,
        pred,
        {n: a.magnitude[0] for n, a in attrs.items()},
        out / "explain.png",
        first.depth,
        title=f"{model.name} · {first.name} · target: mean depth",
    )
    summary = assess(
        [model],
        data,
        methods,
        out / "assess",
        limit=args.limit,
        n_perturbations=args.n_perturbations,
        method_options={"integrated_gradients": {"n_steps": 16}},
        progress=True,
    )
    print(summary_table(summary))
    page = write_report(
        out / "report.html",
        f"depthscope report: {model.name}",
        metrics_rows,
        summary,
        [fig, out / "assess" / "curves.png"],
    )
    print(f"wrote {page}")
    return 0


command("report", "the main job: metrics, explanation figure and assessment table in one HTML page")(
    (_report_parser, _report_run)
)


# ----------------------------------------------------------------------------------------------------- optimize
def _optimize_parser(p: argparse.ArgumentParser) -> None:
    """A cheaper model from a trained one: efficient attention (meta: pooling mixer; pyra: spatial-reduction
    attention) trained by block-wise then end-to-end distillation, int8 post-training quantisation (CPU),
    structured channel pruning with distillation fine-tuning, or distillation into a --student. Training images are
    unlabeled (--train-images: 'builtin' photographs shipped by installed packages, a folder or a glob), never the
    evaluation data. Interrupted training resumes when the same command is run again.

    Writes DIR/model.safetensors (load it anywhere with --model DIR/model.safetensors) and DIR/optimize.json
    (params and MACs before/after, recipe, images, losses).

    Example: depthscope optimize --model meter-xxs-nyu --method pyra --steps 300 --e2e-steps 200 --out out/pyra
    """
    from depthscope.optimize import OPTIMIZERS, OptimizeConfig

    d = OptimizeConfig()
    p.add_argument("--model", default="meter-xxs-nyu", help="model (name or optimised .safetensors) to start from")
    p.add_argument("--method", required=True, choices=OPTIMIZERS.names())
    p.add_argument("--out", required=True, help="output directory (also holds resumable training states)")
    p.add_argument(
        "--train-images",
        default=d.train_images,
        help="'builtin', a folder of unlabeled images, or a glob ('DIR/image_[5-9].png')",
    )
    p.add_argument("--steps", type=int, default=d.steps, help="block-wise / fine-tuning / distillation steps")
    p.add_argument("--e2e-steps", type=int, default=d.e2e_steps, help="meta/pyra: end-to-end distillation steps")
    p.add_argument("--batch", type=int, default=d.batch, help="images per step")
    p.add_argument("--lr", type=float, default=d.lr, help="AdamW learning rate (block-wise, distill)")
    p.add_argument("--e2e-lr", type=float, default=d.e2e_lr, help="AdamW learning rate (end-to-end, pruning)")
    p.add_argument("--ratio", type=float, default=d.ratio, help="prune: share of the parameters to remove")
    p.add_argument("--sr-ratio", type=int, default=d.sr_ratio, help="pyra: key/value reduction per side")
    p.add_argument("--pool", type=int, default=d.pool, help="meta: pooling window")
    p.add_argument("--calib-images", type=int, default=d.calib_images, help="int8: calibration images")
    p.add_argument("--student", help="distill: student model name (same input and unit as --model)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--save-every", type=int, default=d.save_every, help="steps between training checkpoints")
    p.add_argument("--device", default=d.device, help="torch device for training (cpu, cuda)")


def _optimize_run(args: argparse.Namespace) -> int:
    from depthscope.optimize import OptimizeConfig, optimize

    cfg = OptimizeConfig(
        train_images=args.train_images, steps=args.steps, e2e_steps=args.e2e_steps, batch=args.batch, lr=args.lr,
        e2e_lr=args.e2e_lr, ratio=args.ratio, sr_ratio=args.sr_ratio, pool=args.pool,
        calib_images=args.calib_images, student=args.student, seed=args.seed, device=args.device,
        save_every=args.save_every,
    )  # fmt: skip
    report = optimize(args.model, args.method, args.out, cfg)
    b, a = report["before"], report["after"]
    print(f"{report['model']}: params {b['params']:,} -> {a['params']:,} ({a['params_ratio']:.3f}x), "
          f"MACs {b['macs']:,} -> {a['macs']:,} ({a['macs_ratio']:.3f}x)")  # fmt: skip
    print(f"wrote {report['checkpoint']} and {Path(args.out) / 'optimize.json'}")
    return 0


command("optimize", "cheaper models: meta/pyra attention, int8, pruning, distillation")(
    (_optimize_parser, _optimize_run)
)


# ------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthscope",
        description="Evaluate, explain and profile monocular depth estimation models. "
        "Weights are found through DEPTHSCOPE_WEIGHTS (a directory), the user cache or the public URL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (configure, run) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=configure.help,
            description=configure.__doc__,  # type: ignore[attr-defined]
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        configure(p)
        p.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DepthscopeError as e:
        print(f"depthscope {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"depthscope {args.command}: interrupted; finished results are kept in the output directory",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
