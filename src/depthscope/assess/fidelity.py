"""Scores of how trustworthy an attribution map is: both readings of Attribution Fidelity (SPEC §4),
Infidelity (Yeh et al., as in Captum) and the Faithfulness Estimate (Alvarez-Melis & Jaakkola)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from depthscope.assess.perturbation import ChunkBuffer, predict_chunks, replace_masked

DEFAULT_N_PERTURBATIONS = 32
DEFAULT_INFIDELITY_SIGMA = 0.1  # std of the Infidelity noise, in units of the [0, 1] pixel range


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


@dataclass
class Draws:
    """The method-independent part of a Monte-Carlo score, shared by every method's map of one image: the random
    ``perturbation`` per draw (Infidelity: Gaussian noise ``I`` ``(N, 3, H, W)``; Faithfulness Estimate: patch-set
    masks ``(N, 1, H, W)``) and the target's ``drop`` per draw ``(N,)`` in metres. ``draws[:n]`` is the first n."""

    perturbation: torch.Tensor
    drop: torch.Tensor

    def __getitem__(self, n: slice) -> Draws:
        return Draws(self.perturbation[n], self.drop[n])


@torch.no_grad()
def noise_draws(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    n: int = DEFAULT_N_PERTURBATIONS,
    sigma: float = DEFAULT_INFIDELITY_SIGMA,
    seed: int = 0,
    chunk_size: int | str = "auto",
    symmetric: bool = False,
) -> Draws:
    """``n`` seeded Gaussian perturbations (std ``sigma`` of the [0, 1] range, per pixel and channel) and the
    drops ``f(x) - f(x - I)`` of ``fmodel``'s first target, the perturbed images run in batches.

    ``symmetric``: the drop is the odd part of the response, ``(f(x + I) - f(x - I)) / 2`` (twice the forwards).
    The even part (for METER, a mean-depth shift of about -0.16 m that noise of std 0.1 causes whatever the map)
    cannot be explained by any attribution ``<I, a>`` and otherwise dominates every method's score alike."""
    g = torch.Generator().manual_seed(seed)
    noise = sigma * torch.randn((n, *x.shape[1:]), generator=g).to(x)
    f0 = fmodel(x)[0, 0]
    buf = ChunkBuffer(x)
    down = predict_chunks(fmodel, n, lambda s: torch.sub(x, noise[s], out=buf(len(noise[s]))), chunk_size)[:, 0]
    if not symmetric:
        return Draws(noise, (f0 - down).double())
    up = predict_chunks(fmodel, n, lambda s: torch.add(x, noise[s], out=buf(len(noise[s]))), chunk_size)[:, 0]
    return Draws(noise, (up.double() - down.double()) / 2)


def infidelity_score(draws: Draws, attr: torch.Tensor) -> Estimate:
    """Normalised infidelity ``E[(beta I.a - (f(x) - f(x - I)))^2]`` of ``attr`` over ``draws``, ``beta`` the
    least-squares scale (Captum's ``normalize=True``), so unitless maps (rollout) are comparable. One-channel maps
    apply to every channel. The 95 % CI is over the per-draw squared errors (normal approximation)."""
    a = attr[:1].expand(1, draws.perturbation.shape[1], *attr.shape[-2:])
    return infidelity_from_dots((draws.perturbation * a).sum(dim=(1, 2, 3)).double(), draws.drop)


def infidelity_from_dots(dot: torch.Tensor, drop: torch.Tensor) -> Estimate:
    """Infidelity from the per-draw ``<I, a>`` and drops (so a study can take prefixes of one set of draws)."""
    n = drop.numel()
    beta = (dot @ drop) / (dot @ dot).clamp_min(1e-30)
    sq = (beta * dot - drop) ** 2
    half = 1.96 * sq.std().item() / math.sqrt(n) if n > 1 else math.inf
    mean = sq.mean().item()
    return Estimate(mean, n, mean - half, mean + half)


def infidelity(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    attr: torch.Tensor,
    n_perturbations: int = DEFAULT_N_PERTURBATIONS,
    sigma: float = DEFAULT_INFIDELITY_SIGMA,
    seed: int = 0,
    chunk_size: int | str = "auto",
    symmetric: bool = False,
) -> Estimate:
    """Normalised infidelity (Yeh et al.) of ``attr`` for ``fmodel``'s first target; see :func:`infidelity_score`
    and, for ``symmetric``, :func:`noise_draws`."""
    return infidelity_score(noise_draws(fmodel, x, n_perturbations, sigma, seed, chunk_size, symmetric), attr)


@torch.no_grad()
def subset_draws(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    n: int = DEFAULT_N_PERTURBATIONS,
    subset_fraction: float = 0.1,
    patch: int = 16,
    replacement: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int | str = "auto",
) -> Draws:
    """``n`` random sets of ``patch``-sized squares covering ``subset_fraction`` of the image, replaced by
    ``replacement`` (default: the image mean), and the drops of ``fmodel``'s first target."""
    h, w = x.shape[-2:]
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    g = torch.Generator().manual_seed(seed)
    k = max(1, int(subset_fraction * gh * gw))
    cells = torch.stack([torch.randperm(gh * gw, generator=g)[:k] for _ in range(n)])
    grid = torch.zeros(n, gh * gw, dtype=torch.bool).scatter_(1, cells, True).view(n, 1, gh, gw)
    masks = grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w].to(x.device)
    rep = x.mean(dim=(-2, -1), keepdim=True).expand_as(x) if replacement is None else replacement
    buf = ChunkBuffer(x)
    make = lambda s: replace_masked(x, masks[s], rep, buf(len(masks[s])))  # noqa: E731
    drop = fmodel(x)[0, 0] - predict_chunks(fmodel, n, make, chunk_size)[:, 0]
    return Draws(masks, drop)


def faithfulness_score(draws: Draws, signed: torch.Tensor) -> Estimate:
    """Pearson correlation between the attribution sum in each set and the target's drop; 95 % CI by Fisher's z."""
    return faithfulness_from_sums((draws.perturbation[:, 0] * signed[0]).sum(dim=(-2, -1)), draws.drop)


def faithfulness_from_sums(sums: torch.Tensor, drop: torch.Tensor) -> Estimate:
    """Faithfulness Estimate from the per-set attribution sums and drops."""
    n = drop.numel()
    r = pearson(sums, drop)
    z, se = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), 1 / math.sqrt(max(n - 3, 1))
    # min/max keep r inside its interval when |r| ~ 1, where the clamped z rounds the bounds past r.
    return Estimate(r, n, min(math.tanh(z - 1.96 * se), r), max(math.tanh(z + 1.96 * se), r))


def faithfulness_estimate(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    signed: torch.Tensor,
    n_subsets: int = DEFAULT_N_PERTURBATIONS,
    subset_fraction: float = 0.1,
    patch: int = 16,
    replacement: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int | str = "auto",
) -> Estimate:
    """Faithfulness Estimate (Alvarez-Melis & Jaakkola) of the signed map for ``fmodel``'s first target; see
    :func:`subset_draws` and :func:`faithfulness_score`."""
    draws = subset_draws(fmodel, x, n_subsets, subset_fraction, patch, replacement, seed, chunk_size)
    return faithfulness_score(draws, signed)
