"""Depth-boundary metrics: Depth Pro's scale-invariant boundary F1 and recall (Bochkovskii et al. 2024) and
iBims-1's depth boundary errors (Koch et al. 2018). Pure functions on ``(H, W)`` depth maps in metres."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from depthscope.errors import InputError
from depthscope.metrics.registry import DepthMetricGroup, DepthScene, MetricColumn, is_dense, register_depth_metrics


def thresholds_and_weights(t_min: float = 1.05, t_max: float = 1.25, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Depth Pro's ratio thresholds (``n`` evenly from ``t_min`` to ``t_max``) and their weights (proportional to
    the threshold, summing to 1)."""
    t = np.linspace(t_min, t_max, n)
    return t, t / t.sum()


def occluding_edges(d: torch.Tensor, t: float, valid: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Depth Pro's foreground/background edges of inverse depth ``d`` ``(H, W)`` at ratio ``t``, one map per
    neighbour direction (left, top, right, bottom): pixel pairs where one side's inverse depth exceeds the other's
    by more than the factor ``t`` (the nearer side is the foreground). With ``valid``, only pairs of two valid
    pixels count."""
    left = d[:, :-1] / d[:, 1:] > t
    top = d[:-1, :] / d[1:, :] > t
    right = d[:, 1:] / d[:, :-1] > t
    bottom = d[1:, :] / d[:-1, :] > t
    if valid is not None:
        h_ok, v_ok = valid[:, :-1] & valid[:, 1:], valid[:-1, :] & valid[1:, :]
        left, right, top, bottom = left & h_ok, right & h_ok, top & v_ok, bottom & v_ok
    return [left, top, right, bottom]


def boundary_f1_at(pred_inv: torch.Tensor, gt_inv: torch.Tensor, t: float, valid: torch.Tensor | None = None
                   ) -> tuple[float, float, float]:  # fmt: skip
    """``(f1, precision, recall)`` of the occluding edges of two inverse-depth maps at ratio ``t``: precision and
    recall are the means over the four directions of shared edges over predicted (ground-truth) edges."""
    ep, eg = occluding_edges(pred_inv, t, valid), occluding_edges(gt_inv, t, valid)
    recall = 0.25 * sum(float((a & b).sum()) / max(int(b.sum()), 1) for a, b in zip(ep, eg, strict=True))
    precision = 0.25 * sum(float((a & b).sum()) / max(int(a.sum()), 1) for a, b in zip(ep, eg, strict=True))
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return f1, precision, recall


def boundary_scores(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float]:
    """Scale-invariant boundary F1 and recall (Depth Pro, ``eval/boundary_metrics.py``): boundary F1 of the
    inverse depths (``1 / max(d, 1e-6)``) at 10 ratio thresholds from 1.05 to 1.25, weighted by the threshold.
    Scale-invariant: multiplying a depth map by a constant leaves every ratio, so every edge, unchanged.

    Each of the four directions counts a quarter, as in Depth Pro's code: a direction with no edge in either
    map scores 0, so a scene needs occluding edges on all four sides of something for a perfect 1.

    Example:
        >>> d = torch.full((8, 8), 2.0); d[2:6, 2:6] = 1.0  # a near square before a far wall: edges on four sides
        >>> boundary_scores(d, d)["boundary_f1"], boundary_scores(3 * d, d)["boundary_f1"]
        (1.0, 1.0)
    """
    ts, ws = thresholds_and_weights()
    inv_p, inv_g = 1.0 / pred.double().clamp_min(1e-6), 1.0 / gt.double().clamp_min(1e-6)
    f1, rec = 0.0, 0.0
    for t, w in zip(ts, ws, strict=True):
        f, _, r = boundary_f1_at(inv_p, inv_g, float(t), valid)
        f1, rec = f1 + w * f, rec + w * r
    return {"boundary_f1": float(f1), "boundary_recall": float(rec)}


def depth_edges(depth: torch.Tensor, valid: torch.Tensor | None = None) -> np.ndarray:
    """iBims-1's edge map of a depth map: Canny (sigma sqrt 2, thresholds 0.1 and 0.2) of the depth normalised to
    [0, 1] (scikit-image). With ``valid``, invalid pixels first take the value of the nearest valid one (so a hole
    or the crop's border is not an edge) and edges are kept on valid pixels only."""
    try:
        from skimage.feature import canny
    except ImportError:
        raise InputError("depth boundary errors need scikit-image: pip install 'depthscope[skimage]'") from None
    from scipy.ndimage import distance_transform_edt

    d = depth.double().cpu().numpy().copy()
    ok = np.isfinite(d) & (d > 0)
    if valid is not None:
        ok &= valid.cpu().numpy()
    if not ok.any():
        return np.zeros(d.shape, bool)
    if not ok.all():
        _, (iy, ix) = distance_transform_edt(~ok, return_indices=True)
        d = d[iy, ix]
    d = (d - d.min()) / max(d.max() - d.min(), 1e-12)
    edges = canny(d, sigma=math.sqrt(2), low_threshold=0.1, high_threshold=0.2)
    return edges & ok if valid is not None else edges


def depth_boundary_errors(pred_edges: np.ndarray, gt_edges: np.ndarray, theta: float = 10.0) -> dict[str, float]:
    """iBims-1's depth boundary errors (pixels) from two edge maps: accuracy, the mean distance of the predicted
    edges within ``theta`` of a ground-truth edge to the nearest one; completeness, the mean distance of the
    ground-truth edges to the nearest predicted edge. ``theta`` for both when nothing is predicted.

    Example:
        >>> g = np.zeros((9, 9), bool); g[:, 4] = True
        >>> p = np.zeros((9, 9), bool); p[:, 6] = True  # the same edge, 2 px to the right
        >>> depth_boundary_errors(p, g)
        {'dbe_accuracy': 2.0, 'dbe_completeness': 2.0}
    """
    from scipy.ndimage import distance_transform_edt

    if not gt_edges.any():
        return {"dbe_accuracy": math.nan, "dbe_completeness": math.nan}
    d_gt = distance_transform_edt(~gt_edges)
    d_pred = distance_transform_edt(~pred_edges) if pred_edges.any() else None
    near = pred_edges & (d_gt < theta)
    if d_pred is None or not near.any():
        return {"dbe_accuracy": theta, "dbe_completeness": theta}
    return {"dbe_accuracy": float(d_gt[near].mean()), "dbe_completeness": float(d_pred[gt_edges].mean())}


def _dbe(scene: DepthScene, options: Mapping[str, Any]) -> dict[str, float]:
    if not is_dense(scene) and "edges" not in scene.annotations:
        return {"dbe_accuracy": math.nan, "dbe_completeness": math.nan}
    gt_edges = scene.annotations.get("edges")
    gt_edges = depth_edges(scene.gt, scene.valid) if gt_edges is None else np.asarray(gt_edges, dtype=bool)
    return depth_boundary_errors(depth_edges(scene.pred), gt_edges, options["theta"])  # the whole prediction, as iBims


register_depth_metrics(DepthMetricGroup(
    "boundary", "Depth Pro's scale-invariant boundary F1 and recall",
    lambda o: [MetricColumn("boundary_f1", False, "", "Depth Pro's scale-invariant boundary F1: occluding edges "
                            "(neighbour inverse-depth ratio > t) shared with the ground truth, t = 1.05..1.25"),
               MetricColumn("boundary_recall", False, "", "the recall of the same edges")],
    lambda s, o: boundary_scores(s.pred, s.gt, s.valid) if is_dense(s)
    else {"boundary_f1": math.nan, "boundary_recall": math.nan}))  # fmt: skip
register_depth_metrics(DepthMetricGroup(
    "dbe", "iBims-1 depth boundary errors (Canny edges; the dataset's edge maps when it has them)",
    lambda o: [MetricColumn("dbe_accuracy", True, "px", "mean distance of predicted depth edges near a "
                            "ground-truth edge to the nearest one"),
               MetricColumn("dbe_completeness", True, "px", "mean distance of ground-truth edges to the nearest "
                            "predicted edge")],
    _dbe, defaults={"theta": 10.0}))  # fmt: skip
