"""Geometric depth metrics from depth and camera intrinsics: surface normals, point clouds (Chamfer distance and
F-score at a distance threshold), iBims-1 planarity, and errors binned by ground-truth depth. Pure functions on
tensors, depth in metres, angles in degrees."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from depthscope.errors import InputError
from depthscope.metrics.registry import DepthMetricGroup, DepthScene, MetricColumn, is_dense, register_depth_metrics
from depthscope.output.depth import Intrinsics


def point_map(depth: torch.Tensor, k: Intrinsics) -> torch.Tensor:
    """Camera-frame points ``(H, W, 3)`` of a depth map (x right, y down, z forward; OpenCV), float64.

    Example:
        >>> point_map(torch.full((2, 2), 2.0), Intrinsics(1.0, 1.0, 0.5, 0.5))[0, 0].tolist()
        [-1.0, -1.0, 2.0]
    """
    h, w = depth.shape
    z = depth.double()
    v, u = torch.meshgrid(torch.arange(h, dtype=z.dtype), torch.arange(w, dtype=z.dtype), indexing="ij")
    return torch.stack([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], -1)


def normal_map(
    depth: torch.Tensor, k: Intrinsics, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit surface normals ``(H, W, 3)`` (facing the camera) from central differences of the point map, and
    where they are defined ``(H, W)``: interior pixels whose four neighbours are valid."""
    p = point_map(depth, k)
    ok = torch.ones_like(depth, dtype=torch.bool) if valid is None else valid.clone()
    dx = torch.zeros_like(p)
    dy = torch.zeros_like(p)
    dx[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dy[1:-1] = p[2:] - p[:-2]
    n = torch.cross(dx, dy, dim=-1)
    n = torch.where(n[..., 2:3] > 0, -n, n)  # towards the camera (negative z)
    norm = n.norm(dim=-1, keepdim=True)
    defined = torch.zeros_like(ok)
    defined[1:-1, 1:-1] = ok[1:-1, 1:-1] & ok[1:-1, 2:] & ok[1:-1, :-2] & ok[2:, 1:-1] & ok[:-2, 1:-1]
    defined &= norm[..., 0] > 0
    return n / norm.clamp_min(1e-300), defined


def normal_errors(pred: torch.Tensor, gt: torch.Tensor, k: Intrinsics, valid: torch.Tensor) -> dict[str, float]:
    """Angular error (degrees) between the normals of ``pred`` and ``gt`` where both are defined: mean, median and
    the share within 11.25, 22.5 and 30 degrees (the surface-normal benchmark convention)."""
    npred, dp = normal_map(pred, k, valid)
    ngt, dg = normal_map(gt, k, valid)
    both = dp & dg
    if not both.any():
        return {c.name: math.nan for c in NORMAL_COLUMNS}
    cos = (npred[both] * ngt[both]).sum(-1).clamp(-1, 1)
    ang = torch.rad2deg(torch.arccos(cos))
    return {"normal_mean_deg": float(ang.mean()), "normal_median_deg": float(ang.median()),
            "normal_11": float((ang < 11.25).double().mean()), "normal_22": float((ang < 22.5).double().mean()),
            "normal_30": float((ang < 30).double().mean())}  # fmt: skip


NORMAL_COLUMNS = [
    MetricColumn("normal_mean_deg", True, "deg", "mean angle between predicted and ground-truth surface normals"),
    MetricColumn("normal_median_deg", True, "deg", "median of the same angles"),
    MetricColumn("normal_11", False, "", "share of pixels whose normal is within 11.25 deg"),
    MetricColumn("normal_22", False, "", "within 22.5 deg"),
    MetricColumn("normal_30", False, "", "within 30 deg"),
]


def _subsample(points: torch.Tensor, most: int) -> torch.Tensor:
    """Every k-th point, so that at most ``most`` remain (deterministic)."""
    step = max(1, math.ceil(len(points) / most))
    return points[::step]


def nearest_distances(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """For each point of ``a`` ``(N, 3)``, the distance to its nearest point of ``b`` ``(M, 3)`` (brute force in
    chunks of ``chunk`` rows, float64)."""
    a, b = a.double(), b.double()
    return torch.cat([torch.cdist(a[i : i + chunk], b).min(1).values for i in range(0, len(a), chunk)])


def point_cloud_errors(
    pred: torch.Tensor, gt: torch.Tensor, k: Intrinsics, valid: torch.Tensor, tau: float = 0.05, most: int = 10000
) -> dict[str, float]:
    """Chamfer distance (m: the mean of both directions' mean nearest-point distances) and precision, recall and
    F-score at ``tau`` metres between the back-projected valid pixels of ``pred`` and ``gt`` (each cloud thinned to
    at most ``most`` points, every k-th pixel)."""
    p = _subsample(point_map(pred, k)[valid], most)
    g = _subsample(point_map(gt, k)[valid], most)
    if len(p) == 0:
        return {c.name: math.nan for c in POINT_COLUMNS}
    d_pg, d_gp = nearest_distances(p, g), nearest_distances(g, p)
    precision, recall = float((d_pg < tau).double().mean()), float((d_gp < tau).double().mean())
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"chamfer": float((d_pg.mean() + d_gp.mean()) / 2), "fscore": f, "fscore_precision": precision,
            "fscore_recall": recall}  # fmt: skip


POINT_COLUMNS = [
    MetricColumn(
        "chamfer",
        True,
        "m",
        "mean of the two directions' mean distance to the nearest point of the other "
        "cloud (predicted and ground-truth valid pixels back-projected)",
    ),  # fmt: skip
    MetricColumn("fscore", False, "", "F-score at tau: harmonic mean of fscore_precision and fscore_recall"),
    MetricColumn("fscore_precision", False, "", "share of predicted points within tau of a ground-truth point"),
    MetricColumn("fscore_recall", False, "", "share of ground-truth points within tau of a predicted point"),
]


def fit_plane(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares plane of ``points`` ``(N, 3)``: its unit normal and centroid (the smallest principal axis)."""
    c = points.mean(0)
    _, _, vh = torch.linalg.svd(points - c, full_matrices=False)
    return vh[-1], c


def planarity_errors(pred: torch.Tensor, gt: torch.Tensor, k: Intrinsics, valid: torch.Tensor,
                     planes: Mapping[str, torch.Tensor], normals: Mapping[str, Sequence[float]] | None = None,
                     min_share: float = 0.05) -> dict[str, float]:  # fmt: skip
    """iBims-1's planarity errors (Koch et al. 2018, its ``compute_planarity_error``) over annotated planar
    regions covering at least ``min_share`` of the image: the prediction is scaled by the ratio of the medians of
    the ground truth and the prediction in the region, back-projected, and a plane fitted (smallest principal
    axis); flatness is the standard deviation (m; iBims' tables give cm) of the points' distances to it, and
    orientation the angle (deg) between its normal and the annotated one (``normals``, camera frame; without
    it, the normal of the plane fitted to the ground truth). Means over the regions."""
    pg = point_map(gt, k)
    flat, orient = [], []
    for name, mask in planes.items():
        m = mask.to(torch.bool) & valid & (pred > 0)
        if float(m.double().mean()) < min_share or int(m.sum()) < 3:
            continue
        scaled = pred.double() * (gt.double()[m].median() / pred.double()[m].median())
        pts = point_map(scaled, k)[m]
        n_p, c_p = fit_plane(pts)
        n_g = torch.tensor(normals[name], dtype=torch.float64) if normals and name in normals else fit_plane(pg[m])[0]
        n_g = n_g / n_g.norm()
        flat.append(float(((pts - c_p) @ n_p).std()))
        cos = abs(float(n_p @ n_g))
        orient.append(math.degrees(math.atan2(float(torch.linalg.cross(n_p, n_g).norm()), cos)))
    if not flat:
        return {"planarity_flatness": math.nan, "planarity_orientation_deg": math.nan}
    return {"planarity_flatness": sum(flat) / len(flat), "planarity_orientation_deg": sum(orient) / len(orient)}


def binned_errors(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, edges: Sequence[float]
) -> dict[str, float]:
    """RMSE (m) and AbsRel of the valid pixels whose ground truth lies in each bin ``[edges[i], edges[i+1])``;
    NaN for an empty bin."""
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = valid & (gt >= lo) & (gt < hi)
        name = _bin_name(lo, hi)
        if not m.any():
            out[f"rmse_{name}"] = out[f"abs_rel_{name}"] = math.nan
            continue
        p, g = pred[m].double(), gt[m].double()
        out[f"rmse_{name}"] = float(((p - g) ** 2).mean().sqrt())
        out[f"abs_rel_{name}"] = float(((p - g).abs() / g).mean())
    return out


def _bin_name(lo: float, hi: float) -> str:
    return f"{lo:g}_{hi:g}m".replace(".", "p")


def default_bins(max_depth: float) -> list[float]:
    """Five equal bins from 0 to the depth cap (NYU: 0, 2, 4, 6, 8, 10 m; KITTI: 0, 16, ..., 80 m)."""
    return [round(max_depth * i / 5, 6) for i in range(6)]


def _binned_columns(options: Mapping[str, Any]) -> list[MetricColumn]:
    edges = check_bins(options["bins"])
    cols = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        cols.append(
            MetricColumn(f"rmse_{_bin_name(lo, hi)}", True, "m", f"RMSE over ground truth in [{lo:g}, {hi:g}) m")
        )
        cols.append(
            MetricColumn(f"abs_rel_{_bin_name(lo, hi)}", True, "", f"AbsRel over ground truth in [{lo:g}, {hi:g}) m")
        )
    return cols


def check_bins(bins: Sequence[float]) -> list[float]:
    """Bin edges in metres, rising, at least two; one error otherwise."""
    try:
        edges = [float(b) for b in bins]
    except (TypeError, ValueError):
        edges = []
    if len(edges) < 2 or any(b >= a for a, b in zip(edges[1:], edges[:-1], strict=True)) or edges[0] < 0:
        raise InputError(f"depth bins must be rising edges in metres, at least two (e.g. 0,2,4,10), got {list(bins)}")
    return edges


def _need_intrinsics(scene: DepthScene) -> Intrinsics:
    if scene.intrinsics is None:
        raise InputError("this metric needs the camera: --intrinsics fx,fy,cx,cy or --fov DEG (or a dataset that "
                         "has intrinsics)")  # fmt: skip
    return scene.intrinsics


register_depth_metrics(DepthMetricGroup(
    "normals", "surface-normal angular error from depth and intrinsics", lambda o: NORMAL_COLUMNS,
    lambda s, o: normal_errors(s.pred, s.gt, _need_intrinsics(s), s.valid) if is_dense(s)
    else {c.name: math.nan for c in NORMAL_COLUMNS}, needs=("intrinsics",)))  # fmt: skip
register_depth_metrics(DepthMetricGroup(
    "pointcloud", "Chamfer distance and F-score at tau between back-projected point clouds",
    lambda o: POINT_COLUMNS,
    lambda s, o: point_cloud_errors(s.pred, s.gt, _need_intrinsics(s), s.valid, o["tau"], o["max_points"]),
    needs=("intrinsics",), defaults={"tau": 0.05, "max_points": 10000}))  # fmt: skip
register_depth_metrics(DepthMetricGroup(
    "planarity", "iBims-1 planarity: flatness and orientation of annotated planes",
    lambda o: [MetricColumn("planarity_flatness", True, "m", "std of the (median-scaled) predicted points' "
                            "distances to their best-fit plane, mean over annotated planes of >= 5 % of the image"),
               MetricColumn("planarity_orientation_deg", True, "deg", "angle between the predicted points' "
                            "best-fit plane and the annotated plane")],
    lambda s, o: planarity_errors(s.pred, s.gt, _need_intrinsics(s), s.valid, s.annotations.get("planes", {}),
                                  s.annotations.get("plane_normals")),
    needs=("intrinsics", "planes")))  # fmt: skip
register_depth_metrics(DepthMetricGroup(
    "binned", "RMSE and AbsRel per ground-truth depth bin", _binned_columns,
    lambda s, o: binned_errors(s.pred, s.gt, s.valid, check_bins(o["bins"])), defaults={"bins": None}))  # fmt: skip
