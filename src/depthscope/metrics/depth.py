"""Standard monocular-depth accuracy metrics (SPEC §2), pure functions on tensors, depth in metres.

Formulas as in the BTS/AdaBins/NeWCRFs evaluation code: valid pixels are ``min_depth < gt < max_depth`` inside
the chosen crop; the prediction is clipped to ``[min_depth, max_depth]`` (NaN -> min, +Inf -> max); metrics are
computed per image in float64, and a dataset's figure is the mean over images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

from depthscope.errors import InputError
from depthscope.metrics.align import align_prediction

METRIC_NAMES = ("mae", "rmse", "rmse_log", "abs_rel", "sq_rel", "log10", "silog", "delta1", "delta2", "delta3")
LOWER_IS_BETTER = {m: not m.startswith("delta") for m in METRIC_NAMES}
METRIC_UNITS = {"mae": "m", "rmse": "m", "sq_rel": "m"}  # the others are unitless (silog: x 100)
METRIC_DESCRIPTIONS = {
    "mae": "mean |d - d*|",
    "rmse": "sqrt(mean (d - d*)^2)",
    "rmse_log": "sqrt(mean (ln d - ln d*)^2)",
    "abs_rel": "mean |d - d*| / d*",
    "sq_rel": "mean (d - d*)^2 / d*",
    "log10": "mean |log10 d - log10 d*|",
    "silog": "100 sqrt(mean g^2 - (mean g)^2), g = ln d - ln d*",
    "delta1": "share of pixels with max(d/d*, d*/d) < 1.25",
    "delta2": "as delta1, threshold 1.25^2",
    "delta3": "as delta1, threshold 1.25^3",
}

# Crops as fractions of (height, width): (top, bottom, left, right).
# "eigen" is NYU's rows 45:471, cols 41:601 of a 480x640 image; "eigen_kitti" and "garg" are KITTI's.
CROPS: dict[str, tuple[float, float, float, float] | None] = {
    "none": None,
    "eigen": (45 / 480, 471 / 480, 41 / 640, 601 / 640),
    "eigen_kitti": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
}


def crop_mask(h: int, w: int, crop: str = "none", device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean ``(h, w)`` mask of the evaluation crop (exact integer bounds for 480x640 NYU and KITTI sizes)."""
    if crop not in CROPS:
        raise InputError(f"unknown crop {crop!r}; valid crops: {', '.join(CROPS)}")
    mask = torch.zeros(h, w, dtype=torch.bool, device=device)
    box = CROPS[crop]
    if box is None:
        mask[:] = True
        return mask
    t, b, left, r = box
    mask[int(t * h) : int(b * h), int(left * w) : int(r * w)] = True
    return mask


def valid_mask(gt: torch.Tensor, min_depth: float, max_depth: float, crop: str = "none") -> torch.Tensor:
    """Pixels that count: ground truth strictly inside ``(min_depth, max_depth)`` and inside ``crop``."""
    return (gt > min_depth) & (gt < max_depth) & crop_mask(*gt.shape[-2:], crop=crop, device=gt.device)


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """All :data:`METRIC_NAMES` for matching 1-D (already masked, positive) ``pred`` and ``gt`` in metres.

    ``silog`` is ``100 * sqrt(mean(e^2) - mean(e)^2)`` with ``e = log(pred) - log(gt)``; ``log10`` is the mean
    absolute log10 difference; ``delta_i`` the fraction with ``max(pred/gt, gt/pred) < 1.25**i``.
    """
    if pred.numel() == 0:
        raise InputError("no valid ground-truth pixel to evaluate (check the depth caps, crop and depth scale)")
    p, g = pred.double(), gt.double()
    diff = g - p
    abs_diff, sq_diff, inv_g = diff.abs(), diff.square(), g.reciprocal()
    log_err = torch.log(p) - torch.log(g)
    thresh = torch.maximum(g / p, p / g)
    stats = torch.stack(
        [
            abs_diff.mean(),
            sq_diff.mean(),
            log_err.square().mean(),
            log_err.mean(),
            (abs_diff * inv_g).mean(),
            (sq_diff * inv_g).mean(),
            log_err.abs().mean() / math.log(10),  # |log10 g - log10 p| = |log_err| / ln 10
            *((thresh < 1.25**i).double().mean() for i in (1, 2, 3)),
        ]
    ).tolist()
    mae, mse, mse_log, mean_log, abs_rel, sq_rel, log10, d1, d2, d3 = stats
    return {
        "mae": mae,
        "rmse": math.sqrt(mse),
        "rmse_log": math.sqrt(mse_log),
        "abs_rel": abs_rel,
        "sq_rel": sq_rel,
        "log10": log10,
        "silog": math.sqrt(max(mse_log - mean_log**2, 0.0)) * 100,
        "delta1": d1,
        "delta2": d2,
        "delta3": d3,
    }


def evaluate_depth(
    pred: torch.Tensor,
    gt: torch.Tensor,
    min_depth: float = 1e-3,
    max_depth: float = 10.0,
    crop: str = "none",
    median_scaling: bool = False,
    align: str = "none",
    output: str = "depth",
) -> dict[str, float]:
    """Metrics of one predicted depth map against its ground truth, both ``(H, W)`` in metres.

    ``align`` fits a scale-ambiguous prediction to the ground truth over the valid pixels first (``median``,
    ``lstsq-depth``, ``lstsq-disparity``; see :mod:`depthscope.metrics.align`; ``median_scaling=True`` is
    ``align="median"``); ``output`` says whether ``pred`` is depth or (affine-invariant) disparity. The fitted
    ``scale`` (and ``shift``) are returned with the metrics.
    """
    pred, gt = pred.squeeze(), gt.squeeze()
    if pred.shape != gt.shape:
        raise InputError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in size")
    if not torch.isfinite(gt).all():
        raise InputError("ground truth contains NaN or Inf")
    mask = valid_mask(gt, min_depth, max_depth, crop)
    idx = mask.view(-1).nonzero().squeeze(1)  # gathering by index is ~2x faster than boolean indexing here
    p, g = pred.reshape(-1)[idx].double(), gt.reshape(-1)[idx].double()
    align = "median" if median_scaling else align
    fitted: dict[str, float] = {}
    if p.numel():
        p, fitted = align_prediction(p, g, align, output, max_depth)
    p = torch.nan_to_num(p, nan=min_depth, posinf=max_depth, neginf=min_depth).clamp(min_depth, max_depth)
    out = depth_metrics(p, g)
    out["n_valid"] = float(mask.sum().item())
    return out | fitted


def aggregate(rows: Iterable[Mapping[str, float]], names: Iterable[str] = METRIC_NAMES) -> dict[str, float]:
    """Mean over images of each metric (the standard dataset figure)."""
    rows = list(rows)
    if not rows:
        raise InputError("no image was evaluated")
    return {m: sum(float(r[m]) for r in rows) / len(rows) for m in names}
