"""Perturbation curves (SPEC §4): replace the most (MoRF), least (LeRF) or randomly chosen relevant pixels
and measure how far the predicted depth map moves. All perturbed images of one image run as batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.explain.gradients import gaussian_blur, tune_chunk_size

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


def _expand_patches(prank: torch.Tensor, patch: int, h: int, w: int) -> torch.Tensor:
    """Patch ranks ``(gh, gw)`` -> pixel ranks ``(h, w)`` counted in pixels (patch rank x patch area)."""
    if patch == 1:
        return prank.float()
    out = prank.float() * patch * patch
    return out.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:h, :w]


def rank_map(score: torch.Tensor, patch: int = 1) -> torch.Tensor:
    """``(H, W)`` rank of each pixel by descending ``score`` (0 = most relevant; ties by position); with
    ``patch > 1`` pixels share their patch's rank (patches ranked by mean score), counted in pixels so fractions
    stay fractions."""
    h, w = score.shape
    s = F.avg_pool2d(score[None, None].float(), patch, ceil_mode=True)[0, 0] if patch > 1 else score
    order = torch.argsort(s.flatten(), descending=True, stable=True)
    prank = torch.empty_like(order)
    prank[order] = torch.arange(order.numel(), device=order.device)
    return _expand_patches(prank.view(s.shape), patch, h, w)


def reversed_rank(rank: torch.Tensor, patch: int = 1) -> torch.Tensor:
    """The LeRF ranks of a :func:`rank_map` result: least relevant first (one sort serves both orders)."""
    h, w = rank.shape
    n_patches = math.ceil(h / patch) * math.ceil(w / patch)
    return (n_patches - 1) * patch * patch - rank


def random_rank(h: int, w: int, patch: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random order of the pixels (or patches), as ranks like :func:`rank_map`'s."""
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    return _expand_patches(torch.randperm(gh * gw, generator=generator).view(gh, gw), patch, h, w)


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
    x: torch.Tensor,
    ranks: torch.Tensor,
    fractions: torch.Tensor,
    replacement: torch.Tensor,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Perturbed images ``(K, 3, H, W)``: in image ``k``, pixels with ``ranks[k] < fractions[k] * H * W`` are
    replaced by ``replacement``. ``out`` (optional) is reused as the result's storage."""
    n = x.shape[-2] * x.shape[-1]
    return replace_masked(x, (ranks < fractions.to(ranks).view(-1, 1, 1) * n).unsqueeze(1), replacement, out)


def replace_masked(
    x: torch.Tensor, masks: torch.Tensor, replacement: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``(K, 3, H, W)``: ``replacement`` where ``masks`` ``(K, 1, H, W)`` is set, ``x`` elsewhere (exactly: lerp
    with weight 0 or 1, several times faster than ``torch.where`` with broadcast masks on CPU)."""
    return torch.lerp(x, replacement.expand_as(x), masks.to(x.dtype), out=out)


class ChunkBuffer:
    """One reusable ``(chunk, *shape)`` buffer for inputs built chunk by chunk: fresh large allocations cost page
    faults on every chunk (measured: the perturbed images took 3x longer to build without it)."""

    def __init__(self, like: torch.Tensor) -> None:
        self.like, self.buf = like, None

    def __call__(self, k: int) -> torch.Tensor:
        if self.buf is None or self.buf.shape[0] < k:
            self.buf = torch.empty(k, *self.like.shape[1:], dtype=self.like.dtype, device=self.like.device)
        return self.buf[:k]


@torch.no_grad()
def predict_chunks(
    model: torch.nn.Module, n: int, make: Callable[[slice], torch.Tensor], chunk_size: int | str = "auto"
) -> torch.Tensor:
    """``model`` on ``n`` inputs built a chunk at a time by ``make(slice)`` (so the ``n`` inputs never sit in
    memory at once); ``chunk_size="auto"`` takes the fastest per input, measured once by
    :func:`~depthscope.explain.gradients.tune_chunk_size`."""
    if chunk_size == "auto":
        chunk_size = tune_chunk_size(model, make(slice(0, 1)), n, backward=False)
    c = int(chunk_size)
    return torch.cat([model(make(slice(s, min(s + c, n)))) for s in range(0, n, c)])


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
    chunk_size: int | str = "auto",
) -> Curves:
    """MoRF/LeRF/random curves for image ``x`` ``(1,3,H,W)`` and relevance ``score`` ``(H,W)`` (magnitude).

    Distance at fraction ``k``: RMSE (m) and AbsRel between the original and the perturbed prediction over
    pixels with a prediction; with ``gt`` (m), also the change of RMSE against ground truth. The perturbed images
    are built and run ``chunk_size`` at a time, by default the fastest measured (one batch of all of them is
    slower on a 2-core CPU; see benchmarks/assess_speed.py).
    """
    if tuple(score.shape) != tuple(x.shape[-2:]):
        raise InputError(f"attribution map {tuple(score.shape)} does not match the image {tuple(x.shape[-2:])}")
    if not torch.isfinite(score).all():
        raise InputError("attribution map contains NaN or Inf")
    fractions = [float(f) for f in fractions]
    g = torch.Generator().manual_seed(seed)
    h, w = score.shape
    morf = rank_map(score, patch)
    ranks = {"morf": morf, "lerf": reversed_rank(morf, patch), "random": random_rank(h, w, patch, g).to(score)}
    # Fraction 0 perturbs nothing: one unperturbed image (entry 0) gives ``ref`` for every order; the other
    # fractions run (3 x 10 by default), each chunk of perturbed images built just before its forward.
    moved = [j for j, f in enumerate(fractions) if f > 0]
    stack = torch.stack(list(ranks.values()))
    order_of = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(len(ranks)).repeat_interleave(len(moved))])
    fraction_of = torch.tensor([0.0] + [fractions[j] for j in moved] * len(ranks))
    rep = replacement_image(x, replacement, seed)
    buf = ChunkBuffer(x)
    pred = predict_chunks(
        model,
        len(order_of),
        lambda s: perturbed_batch(x, stack[order_of[s]], fraction_of[s], rep, buf(len(order_of[s]))),
        chunk_size,
    )[:, 0]
    ref, moved_preds = pred[0], pred[1:].view(len(ranks), len(moved), h, w)
    valid = ref > 0
    diff = moved_preds - ref
    if not valid.all():
        diff = diff[..., valid]
    diff = diff.flatten(2)
    rmse = torch.zeros(len(ranks), len(fractions))  # fraction 0: the prediction is ref, distance 0
    abs_rel = torch.zeros(len(ranks), len(fractions))
    rmse[:, moved] = diff.pow(2).mean(-1).sqrt().cpu()
    abs_rel[:, moved] = (diff.abs() / ref[valid]).mean(-1).cpu()
    curves = Curves(
        fractions,
        {o: rmse[i].tolist() for i, o in enumerate(ranks)},
        {o: abs_rel[i].tolist() for i, o in enumerate(ranks)},
    )
    if gt is not None:
        m = (gt > 0) & valid
        base = (ref[m] - gt[m]).pow(2).mean().sqrt()
        change = torch.zeros(len(ranks), len(fractions))  # fraction 0: the prediction is ref, no change
        change[:, moved] = ((moved_preds[..., m] - gt[m]).pow(2).mean(-1).sqrt() - base).cpu()
        curves.gt_rmse_change = {o: change[i].tolist() for i, o in enumerate(ranks)}
    return curves
