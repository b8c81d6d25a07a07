"""Scores of how trustworthy an attribution map is: both readings of Attribution Fidelity (SPEC §4),
Infidelity (Yeh et al., as in Captum) and the Faithfulness Estimate (Alvarez-Melis & Jaakkola)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from depthscope.assess.perturbation import predict_batched


def af_perturbation(d_morf: Sequence[float], d_lerf: Sequence[float], eps: float = 1e-12) -> float:
    """Mean over fractions k > 0 of ``(d_MoRF(k) - d_LeRF(k)) / (d_MoRF(k) + d_LeRF(k) + eps)``, in [-1, 1].

    1: only the pixels the map calls relevant move the depth map; ~0: the ranking carries no information;
    negative: the ranking is inverted. ``d`` are distances at the same fractions, the first being k = 0.
    """
    m = torch.as_tensor(d_morf[1:], dtype=torch.float64)
    lf = torch.as_tensor(d_lerf[1:], dtype=torch.float64)
    return ((m - lf) / (m + lf + eps)).mean().item()


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return (a @ b).item() / den if den > 0 else 0.0


def af_depth_correlation(magnitude: torch.Tensor, depth: torch.Tensor) -> float:
    """Pearson correlation between attribution magnitude and predicted depth at input resolution, over pixels
    with a prediction (depth > 0)."""
    valid = depth > 0
    return pearson(magnitude[valid], depth[valid])


@dataclass
class Estimate:
    """A Monte-Carlo score with its number of draws and a 95 % confidence interval."""

    value: float
    n: int
    ci_low: float
    ci_high: float


@torch.no_grad()
def infidelity(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    attr: torch.Tensor,
    n_perturbations: int = 32,
    sigma: float = 0.1,
    seed: int = 0,
    chunk_size: int = 2,
) -> Estimate:
    """Normalised infidelity of the first target: ``E[(beta I.a - (f(x) - f(x - I)))^2]`` with Gaussian
    ``I ~ N(0, sigma^2)`` per pixel and channel and ``beta`` the least-squares scale (Captum's
    ``normalize=True``), so unitless maps (rollout) are comparable. One-channel maps apply to every channel.
    The 95 % CI is over the per-perturbation squared errors (normal approximation)."""
    g = torch.Generator().manual_seed(seed)
    noise = sigma * torch.randn((n_perturbations, *x.shape[1:]), generator=g).to(x)
    a = attr[:1].expand(1, x.shape[1], *attr.shape[-2:])
    dot = (noise * a).sum(dim=(1, 2, 3)).double()
    f0 = fmodel(x)[0, 0]
    drop = (f0 - predict_batched(fmodel, x - noise, chunk_size)[:, 0]).double()
    beta = (dot @ drop) / (dot @ dot).clamp_min(1e-30)
    sq = (beta * dot - drop) ** 2
    half = 1.96 * sq.std().item() / math.sqrt(n_perturbations) if n_perturbations > 1 else math.inf
    mean = sq.mean().item()
    return Estimate(mean, n_perturbations, mean - half, mean + half)


@torch.no_grad()
def faithfulness_estimate(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    signed: torch.Tensor,
    n_subsets: int = 32,
    subset_fraction: float = 0.1,
    patch: int = 16,
    replacement: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int = 2,
) -> Estimate:
    """Pearson correlation, over ``n_subsets`` random sets of ``patch``-sized squares covering
    ``subset_fraction`` of the image, between the attribution sum in the set and the target's drop when the
    set is replaced (default: image mean). 95 % CI by Fisher's z."""
    h, w = x.shape[-2:]
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    g = torch.Generator().manual_seed(seed)
    k = max(1, int(subset_fraction * gh * gw))
    cells = torch.stack([torch.randperm(gh * gw, generator=g)[:k] for _ in range(n_subsets)])
    grid = torch.zeros(n_subsets, gh * gw, dtype=torch.bool).scatter_(1, cells, True).view(n_subsets, 1, gh, gw)
    masks = grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w].to(x.device)
    rep = x.mean(dim=(-2, -1), keepdim=True).expand_as(x) if replacement is None else replacement
    batch = torch.where(masks, rep, x)
    drop = fmodel(x)[0, 0] - predict_batched(fmodel, batch, chunk_size)[:, 0]
    sums = (masks[:, 0] * signed[0]).sum(dim=(-2, -1))
    r = pearson(sums, drop)
    z, se = math.atanh(max(min(r, 0.999999), -0.999999)), 1 / math.sqrt(max(n_subsets - 3, 1))
    return Estimate(r, n_subsets, math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se))
