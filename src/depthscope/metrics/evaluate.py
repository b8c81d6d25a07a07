"""``evaluate``: a model over a dataset, per-image metrics streamed to disk, aggregate at the end."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from depthscope.data.datasets import DepthDataset, check_limit, open_dataset
from depthscope.data.prefetch import prefetch
from depthscope.errors import InputError, warn
from depthscope.metrics.align import ALIGNMENTS
from depthscope.metrics.depth import METRIC_NAMES, aggregate, evaluate_depth
from depthscope.models import DepthModel, load_model
from depthscope.output.files import CsvAppender, RunLock, write_json

DEFAULT_ALIGNMENT = {"depth": "none", "disparity": "lstsq-disparity", "relative": "lstsq-depth"}


@dataclass
class EvaluationResult:
    """Aggregate metrics (mean over images) and the per-image rows they came from."""

    model: str
    dataset: str
    metrics: dict[str, float]
    per_image: list[dict[str, float | str]] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            **self.metrics,
            "n_images": len(self.per_image),
            "model": self.model,
            "dataset": self.dataset,
            **self.settings,
        }


@contextmanager
def reserve_one_core(device: torch.device) -> Iterator[None]:
    """On CPU, leave one core to the decode/score worker: intra-op threads spinning against a busy core slow the
    forward pass more than the worker gains (measured on 2 cores: 23.6 -> 39.6 ms per forward)."""
    threads = torch.get_num_threads()
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(threads - 1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def resolve_crop(crop: str | None, dataset: str, model: DepthModel) -> str:
    """``eigen`` means KITTI's Eigen crop on KITTI; ``None`` means the model's own protocol."""
    crop = crop or model.info.eval.crop
    return "eigen_kitti" if crop == "eigen" and dataset == "kitti" else crop


@torch.no_grad()
def check_prediction(model: DepthModel, pred: torch.Tensor, where: str) -> None:
    """Refuse a model whose prediction is not finite, and say so loudly when a metric model's median prediction is
    far outside its evaluation range (wrong weights, wrong preprocessing): never a silently wrong number."""
    if not torch.isfinite(pred).all():
        raise InputError(
            f"{model.name} predicts NaN/Inf on {where} (weights: {model.info.weights or 'random'}); the checkpoint "
            "or the model's preprocessing is broken"
        )
    if model.preprocessing.output != "depth":
        return
    med, (lo, hi) = float(pred.median()), (model.info.eval.min_depth, model.info.eval.max_depth)
    if not 0.01 * hi <= med <= 2 * hi:
        warn(
            f"{model.name} predicts a median depth of {med:.3g} m on {where}, outside what its protocol "
            f"({lo:g}..{hi:g} m) expects: are the weights ({model.info.weights or 'random'}) and the dataset right?"
        )


def evaluate(
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    *,
    dataset: str | None = None,
    depth_scale: float | None = None,
    crop: str | None = None,
    min_depth: float | None = None,
    max_depth: float | None = None,
    median_scaling: bool = False,
    align: str | None = None,
    device: str | torch.device | None = None,
    out: str | os.PathLike | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` with the standard metrics (depth in metres), as BTS/AdaBins/NeWCRFs do.

    Args:
        model: a :class:`~depthscope.models.DepthModel` or a model name.
        data: a dataset or a path :func:`~depthscope.data.open_dataset` reads as ``dataset``.
        dataset: ``nyu``, ``kitti`` or ``pairs`` (default: the model's protocol).
        depth_scale: integer depth PNG value / scale = metres (NYU 1000, KITTI 256).
        crop: ``eigen``, ``garg``, ``eigen_kitti`` or ``none`` (default: the model's protocol).
        min_depth: lower depth cap in metres (default: the model's, 1e-3).
        max_depth: upper depth cap in metres (default: the model's, NYU 10, KITTI 80).
        median_scaling: the same as ``align="median"``.
        align: fit each prediction to its ground truth first: ``none`` (default for metric models), ``median``,
            ``lstsq-depth`` (default for relative depth) or ``lstsq-disparity`` (default for disparity outputs).
        device: where to run (a name loads there).
        out: per-image rows go to ``out/per_image.csv`` as they are computed, the aggregate to ``out/metrics.json``.
        limit: only the first ``limit`` images.
        progress: a progress bar.

    Returns:
        An :class:`EvaluationResult`: ``metrics`` (mae, rmse, rmse_log, abs_rel, sq_rel, log10, silog, delta1-3)
        and ``per_image`` rows.

    Example:
        >>> from depthscope.data import find_data
        >>> res = evaluate("meter-xxs-nyu", find_data(), crop="eigen")
        >>> round(res.metrics["rmse"], 4), round(res.metrics["abs_rel"], 4), len(res.per_image)
        (0.5604, 0.1763, 10)
    """
    if isinstance(model, str):
        model = load_model(model, device=device or "cpu")
    elif device is not None:
        model = model.to(device)
    model.eval()
    dev = next(model.parameters()).device
    ds = data if isinstance(data, DepthDataset) else open_dataset(data, dataset or model.info.eval.dataset, depth_scale)
    crop = resolve_crop(crop, ds.name, model)
    lo = model.info.eval.min_depth if min_depth is None else min_depth
    hi = model.info.eval.max_depth if max_depth is None else max_depth
    check_limit(limit)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise InputError("the dataset is empty")
    output = model.preprocessing.output
    align = "median" if median_scaling else (align or DEFAULT_ALIGNMENT[output])
    if align not in ALIGNMENTS:
        raise InputError(f"unknown alignment {align!r}; valid: {', '.join(ALIGNMENTS)}")
    fitted = {"none": [], "median": ["scale"]}.get(align, ["scale", "shift"])
    columns = ["image", *METRIC_NAMES, "n_valid", *fitted]
    if model.info.weights is None and str(dev) != "meta":
        warn(f"{model.name} has random weights (no checkpoint was loaded): its metrics describe no trained model")
    # one run writes a folder at a time; a rerun starts from nothing, so a failure halfway cannot leave the last
    # run's metrics.json beside this run's per-image rows
    with RunLock(out) if out is not None else contextlib.nullcontext():
        sink = None
        if out is not None:
            for stale in ("per_image.csv", "metrics.json"):
                (Path(out) / stale).unlink(missing_ok=True)
            sink = CsvAppender(Path(out) / "per_image.csv", columns)
        rows: list[dict[str, float | str]] = []

        def score(name: str, pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float | str]:
            return {"image": name, **evaluate_depth(pred, gt, lo, hi, crop, align=align, output=output)}

        def collect(fut: Future) -> None:
            rows.append(fut.result())
            if sink is not None:
                sink.append(rows[-1])
            bar.update()

        # Pipeline over two cores: one worker thread decodes upcoming images and scores finished predictions while
        # the main thread runs the forward pass (PNG decoding and metrics release the GIL).
        bar = tqdm(total=n, desc=f"evaluate {model.name}", disable=not progress)
        with ThreadPoolExecutor(max_workers=1) as worker, reserve_one_core(dev):
            pending: Future | None = None
            for sample in prefetch(ds.__getitem__, n, pool=worker):
                if sample.depth is None:
                    raise InputError(f"{sample.name}: no ground-truth depth to evaluate against")
                pred = model(sample.image.unsqueeze(0).to(dev))[0, 0].cpu()
                if not rows and pending is None:
                    check_prediction(model, pred, sample.name)
                if pending is not None:
                    collect(pending)
                pending = worker.submit(score, sample.name, pred, sample.depth)
            if pending is not None:
                collect(pending)
        bar.close()
        settings = {"crop": crop, "min_depth": lo, "max_depth": hi, "align": align, "model_output": output}
        result = EvaluationResult(model.name, ds.name, aggregate(rows), rows, settings)
        if out is not None:
            write_json(Path(out) / "metrics.json", result.to_dict())
        return result
