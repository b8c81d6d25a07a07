"""Perturbation curves (SPEC §4): replace the most (MoRF), least (LeRF) or randomly chosen relevant pixels
and measure how far the predicted depth map moves. All perturbed images of one image run as batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.explain.gradients import gaussian_blur

DEFAULT_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(11))  # 0, 5, ..., 50 %
ORDERS = ("morf", "lerf", "random")


def replacement_image(x: torch.Tensor, kind: str = "mean", seed: int = 0) -> torch.Tensor:
    """What perturbed pixels become: per-channel image ``mean`` (default), ``black``, ``blur`` or ``noise``."""
    if kind == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "blur":
        return gaussian_blur(x, sigma=min(x.shape[-2:]) / 32)
    if kind == "noise":
        return torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)).to(x)
    raise InputError(f"unknown replacement {kind!r}; valid: black, blur, mean, noise")


def rank_map(score: torch.Tensor, patch: int = 1) -> torch.Tensor:
    """``(H, W)`` rank of each pixel by descending ``score`` (0 = most relevant); with ``patch > 1`` pixels
    share their patch's rank (patches ranked by mean score), counted in pixels so fractions stay fractions."""
    h, w = score.shape
    if patch > 1:
        pooled = F.avg_pool2d(score[None, None].float(), patch, ceil_mode=True)[0, 0]
        order = torch.argsort(pooled.flatten(), descending=True, stable=True)
        prank = torch.empty_like(order)
        prank[order] = torch.arange(order.numel())
        prank = prank.view(pooled.shape).float() * patch * patch
        return prank.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:h, :w]
    order = torch.argsort(score.flatten(), descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return rank.view(h, w).float()


@dataclass
class Curves:
    """Distances (metres for RMSE) of perturbed predictions from the original, per order and fraction."""

    fractions: list[float]
    rmse: dict[str, list[float]]
    abs_rel: dict[str, list[float]]
    gt_rmse_change: dict[str, list[float]] = field(default_factory=dict)

    def auc(self, order: str, metric: str = "rmse") -> float:
        """Area under the curve over the fraction range, divided by that range (the curve's mean height)."""
        y = np.asarray(getattr(self, metric)[order])
        x = np.asarray(self.fractions)
        return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def perturbed_batch(
    x: torch.Tensor, ranks: Sequence[torch.Tensor], fractions: Sequence[float], replacement: torch.Tensor
) -> torch.Tensor:
    """All perturbed images ``(len(ranks) * len(fractions), 3, H, W)``: pixels with rank < f * N replaced."""
    n = x.shape[-2] * x.shape[-1]
    thr = torch.tensor(fractions, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) * n
    masks = torch.stack(list(ranks)).unsqueeze(1) < thr  # (orders, fractions, H, W)
    masks = masks.flatten(0, 1).unsqueeze(1)
    return torch.where(masks, replacement, x)


@torch.no_grad()
def predict_batched(model: torch.nn.Module, batch: torch.Tensor, chunk_size: int) -> torch.Tensor:
    return torch.cat([model(c) for c in batch.split(chunk_size)])


@torch.no_grad()
def perturbation_curves(
    model: torch.nn.Module,
    x: torch.Tensor,
    score: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    replacement: str = "mean",
    patch: int = 1,
    seed: int = 0,
    gt: torch.Tensor | None = None,
    chunk_size: int = 2,
) -> Curves:
    """MoRF/LeRF/random curves for image ``x`` ``(1,3,H,W)`` and relevance ``score`` ``(H,W)`` (magnitude).

    Distance at fraction ``k``: RMSE (m) and AbsRel between the original and the perturbed prediction over
    pixels with a prediction; with ``gt`` (m), also the change of RMSE against ground truth. ``chunk_size``
    defaults to 2, the fastest measured on a 2-core CPU (see benchmarks/assess_speed.py).
    """
    if tuple(score.shape) != tuple(x.shape[-2:]):
        raise InputError(f"attribution map {tuple(score.shape)} does not match the image {tuple(x.shape[-2:])}")
    if not torch.isfinite(score).all():
        raise InputError("attribution map contains NaN or Inf")
    fractions = [float(f) for f in fractions]
    g = torch.Generator().manual_seed(seed)
    ranks = {
        "morf": rank_map(score, patch),
        "lerf": rank_map(-score, patch),
        "random": rank_map(torch.rand(score.shape, generator=g).to(score), patch),
    }
    ref = model(x)[0, 0]
    valid = ref > 0
    batch = perturbed_batch(x, list(ranks.values()), fractions, replacement_image(x, replacement, seed))
    preds = predict_batched(model, batch, chunk_size)[:, 0].view(len(ranks), len(fractions), *ref.shape)
    diff = (preds - ref)[..., valid]
    rmse = diff.pow(2).mean(-1).sqrt()
    abs_rel = (diff.abs() / ref[valid]).mean(-1)
    curves = Curves(
        fractions,
        {o: rmse[i].tolist() for i, o in enumerate(ranks)},
        {o: abs_rel[i].tolist() for i, o in enumerate(ranks)},
    )
    if gt is not None:
        m = (gt > 0) & valid
        base = (ref[m] - gt[m]).pow(2).mean().sqrt()
        err = (preds[..., m] - gt[m]).pow(2).mean(-1).sqrt() - base
        curves.gt_rmse_change = {o: err[i].tolist() for i, o in enumerate(ranks)}
    return curves
