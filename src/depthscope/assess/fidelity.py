"""Scores of how trustworthy an attribution map is: both readings of Attribution Fidelity (SPEC §4),
Infidelity (Yeh et al., as in Captum) and the Faithfulness Correlation (Bhatt et al. 2020)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depthscope.assess.perturbation import replace_masked
from depthscope.errors import InputError
from depthscope.explain.gradients import weighted_input_gradients
from depthscope.ops.batching import ChunkBuffer, predict_chunks
from depthscope.ops.fills import fill_image
from depthscope.ops.stats import pearson
from depthscope.seeding import generator

# Chosen by benchmarks/perturbation_count.py (README, "How many draws"): with the gradient control variate,
# symmetric drops and noise of std 0.01, 256 is the smallest count tested (8..256) at which Infidelity ranks 7
# methods the same across seeds (tie-aware Spearman >= 0.9; all 30 image x seed pairs, minimum 0.99). 64 draws
# reach 29 of 30, a quarter of the cost.
DEFAULT_N_PERTURBATIONS = 256
DEFAULT_INFIDELITY_SIGMA = 0.01  # std of the Infidelity noise, in units of the [0, 1] pixel range
DEFAULT_SYMMETRIC_INFIDELITY = True
MAX_DRAWS = 1_000_000


def check_draws(name: str, n: int | None) -> None:
    """One clear error for a Monte-Carlo draw count outside 2..:data:`MAX_DRAWS` (None: not set here)."""
    if n is not None and not 2 <= n <= MAX_DRAWS:
        raise InputError(f"{name} must be between 2 and {MAX_DRAWS:,} draws, got {n}")


def af_perturbation(d_morf: Sequence[float], d_lerf: Sequence[float], eps: float = 1e-12) -> float:
    """Mean over fractions k > 0 of ``(d_MoRF(k) - d_LeRF(k)) / (d_MoRF(k) + d_LeRF(k) + eps)``, in [-1, 1].

    1: only the pixels the map calls relevant move the depth map; ~0: the ranking carries no information;
    negative: the ranking is inverted. ``d`` are distances at the same fractions, the first being k = 0.
    """
    m = torch.as_tensor(d_morf[1:], dtype=torch.float64)
    lf = torch.as_tensor(d_lerf[1:], dtype=torch.float64)
    return ((m - lf) / (m + lf + eps)).mean().item()


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
    ``perturbation`` per draw (Infidelity: Gaussian noise ``I`` ``(N, 3, H, W)``; Faithfulness Correlation: patch-set
    masks ``(N, 1, H, W)``) and the target's ``drop`` per draw ``(N,)`` in metres. ``draws[:n]`` is the first n.

    Infidelity draws may carry a control variate: the target's input ``gradient`` g ``(3, H, W)``, the noise std
    ``sigma`` and the drop g predicts per draw, ``linear`` = ``<I, g>`` ``(N,)`` (see :func:`infidelity_terms`)."""

    perturbation: torch.Tensor
    drop: torch.Tensor
    linear: torch.Tensor | None = None
    gradient: torch.Tensor | None = None
    sigma: float | None = None

    def __getitem__(self, n: slice) -> Draws:
        linear = None if self.linear is None else self.linear[n]
        return Draws(self.perturbation[n], self.drop[n], linear, self.gradient, self.sigma)

    def __len__(self) -> int:
        return self.drop.numel()

    def cat(self, more: Draws) -> Draws:
        """These draws followed by ``more`` (a later round of the same stream; the gradient is shared)."""
        linear = None if self.linear is None else torch.cat([self.linear, more.linear])
        perturbation = torch.cat([self.perturbation, more.perturbation])
        return Draws(perturbation, torch.cat([self.drop, more.drop]), linear, self.gradient, self.sigma)


@torch.no_grad()
def noise_draws(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    n: int = DEFAULT_N_PERTURBATIONS,
    sigma: float = DEFAULT_INFIDELITY_SIGMA,
    seed: int = 0,
    chunk_size: int | str = "auto",
    symmetric: bool = DEFAULT_SYMMETRIC_INFIDELITY,
    control_variate: bool = True,
    region: torch.Tensor | None = None,
) -> Draws:
    """``n`` seeded Gaussian perturbations (std ``sigma`` of the [0, 1] range, per pixel and channel) and the
    drops ``f(x) - f(x - I)`` of ``fmodel``'s first target, the perturbed images run in batches.

    ``symmetric``: the drop is the odd part of the response, ``(f(x + I) - f(x - I)) / 2`` (twice the forwards).
    The even part (for METER, a mean-depth shift of about -0.16 m that noise of std 0.1 causes whatever the map)
    cannot be explained by any attribution ``<I, a>`` and otherwise dominates every method's score alike.

    ``control_variate``: also one backward pass for the target's gradient g, whose predicted drops ``<I, g>``
    let :func:`infidelity_terms` take the drops' linear part exactly instead of by sampling (needs a
    differentiable ``fmodel``; an int8 model is not). ``region`` (bool ``(H, W)``): noise only on its pixels."""
    return NoiseStream(fmodel, x, sigma, seed, chunk_size, symmetric, control_variate, region).draw(n)


class NoiseStream:
    """Infidelity draws of one image in rounds: each :meth:`draw` continues the seeded stream, so the draws of an
    adaptive run are a prefix of one fixed sequence (see :func:`noise_draws` for the arguments)."""

    def __init__(
        self,
        fmodel: torch.nn.Module,
        x: torch.Tensor,
        sigma: float = DEFAULT_INFIDELITY_SIGMA,
        seed: int = 0,
        chunk_size: int | str = "auto",
        symmetric: bool = DEFAULT_SYMMETRIC_INFIDELITY,
        control_variate: bool = True,
        region: torch.Tensor | None = None,
    ) -> None:
        self.fmodel, self.x, self.sigma, self.chunk_size = fmodel, x, sigma, chunk_size
        self.region = None if region is None else region.to(x.device, x.dtype)  # noise only inside it
        self.symmetric, self.control_variate = symmetric, control_variate
        self.gen = generator(seed, "infidelity")
        self.buf = ChunkBuffer(x)
        self.grad: torch.Tensor | None = None
        self.f0: torch.Tensor | None = None

    @torch.no_grad()
    def draw(self, n: int) -> Draws:
        """The next ``n`` draws and their drops (forwards: ``2 n`` symmetric, else ``n``, + 1 the first time)."""
        x, buf, fm = self.x, self.buf, self.fmodel
        noise = self.sigma * torch.randn((n, *x.shape[1:]), generator=self.gen).to(x)
        if self.region is not None:
            noise *= self.region
        down = predict_chunks(fm, n, lambda s: torch.sub(x, noise[s], out=buf(len(noise[s]))), self.chunk_size)[:, 0]
        if self.symmetric:
            up = predict_chunks(fm, n, lambda s: torch.add(x, noise[s], out=buf(len(noise[s]))), self.chunk_size)
            drop = (up[:, 0].double() - down.double()) / 2
        else:
            if self.f0 is None:
                self.f0 = fm(x)[0, 0]
            drop = (self.f0 - down).double()
        if not self.control_variate:
            return Draws(noise, drop)
        if self.grad is None:
            with torch.enable_grad():
                self.grad = weighted_input_gradients(fm, x, chunk_size=1)[0]  # (3, H, W), m per unit of [0, 1]
        return Draws(noise, drop, _dots(noise, self.grad), self.grad, self.sigma)


def infidelity_score(draws: Draws, attr: torch.Tensor) -> Estimate:
    """Normalised infidelity ``E[(beta I.a - drop)^2]`` of ``attr`` over ``draws``, ``beta`` the least-squares
    scale (Captum's ``normalize=True``), so unitless maps (rollout) are comparable. One-channel maps apply to every
    channel. See :func:`infidelity_terms` for the estimator and its 95 % CI (normal approximation)."""
    a = attr[0]
    value, influence = infidelity_terms(noise_dots(draws, a), draws.drop, draws.linear, control_moments(draws, a))
    n = draws.drop.numel()
    half = 1.96 * influence.std().item() / math.sqrt(n) if n > 1 else math.inf
    return Estimate(value.item(), n, value.item() - half, value.item() + half)


def noise_dots(draws: Draws, maps: torch.Tensor) -> torch.Tensor:
    """``<I, a>`` per map and draw ``(..., N)`` for maps ``(..., C, H, W)``, ``C`` 1 (every channel) or 3."""
    return _dots(draws.perturbation, maps)


def _dots(noise: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    # one matrix product in the noise's dtype: no (N, C, H, W) product tensor (236 MB for 64 draws at 480x640)
    a = maps.to(noise.dtype).expand(*maps.shape[:-3], *noise.shape[1:]).reshape(*maps.shape[:-3], -1)
    return (a @ noise.reshape(len(noise), -1).T).double()


def control_moments(draws: Draws, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``sigma^2 (|a|^2, <a, g>, |g|^2)`` per map ``(..., C, H, W)``: the exact second moments of ``<I, a>`` and
    ``<I, g>`` the control variate uses (None for draws without a gradient)."""
    if draws.gradient is None:
        return None
    a = maps.double().expand(*maps.shape[:-3], *draws.gradient.shape)
    g, var, dims = draws.gradient.double(), draws.sigma**2, (-3, -2, -1)
    return var * (a * a).sum(dims), var * (a * g).sum(dims), var * (g * g).sum()


def infidelity_terms(
    dot: torch.Tensor,
    drop: torch.Tensor,
    linear: torch.Tensor | None = None,
    moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(infidelity (...), influence (..., n))`` from the per-draw ``dot`` = ``<I, a>`` ``(..., n)`` and
    ``drop`` ``(n,)`` (leading dims: maps, so a study scores many maps on one set of draws). The influence is
    each draw's first-order share of the estimate: its std / sqrt(n) is the estimate's standard error.

    Without ``linear``: the plain Monte-Carlo mean of ``(beta <I, a> - drop)^2`` (Captum's estimator).

    With ``linear`` = ``<I, g>`` and ``moments`` = ``(E<I,a>^2, E<I,a><I,g>, E<I,g>^2)`` = ``sigma^2 (|a|^2,
    <a, g>, |g|^2)`` (exact for Gaussian noise): a control-variate estimate of the same expectation. The
    normalised infidelity is ``E[drop^2] - E[<I,a> drop]^2 / E[<I,a>^2]``; with ``drop = c <I,g> + r`` (``c`` the
    drops' regression on ``<I,g>``), ``E[<I,a> drop] = c sigma^2 <a,g> + E[<I,a> r]`` takes the linear part
    exactly and samples only the residual ``r`` (centred: ``E<I,a> = 0``). Where the gradient predicts the drops
    (small ``sigma``, symmetric drops: 73-94 % of their variance on the METER images checked) that term's sampling
    variance shrinks by as much; where it does not, ``c`` ~ 0 and the estimate is the plain one, centred."""
    if linear is None:
        beta = (dot * drop).sum(-1) / (dot * dot).sum(-1).clamp_min(1e-30)
        sq = (beta.unsqueeze(-1) * dot - drop) ** 2
        return sq.mean(-1), sq
    aa, ag, gg = moments
    n = drop.shape[-1]
    lc, dc = linear - linear.mean(), drop - drop.mean()
    c = (lc @ dc) / (lc @ lc).clamp_min(1e-30)
    rc = dc - c * lc  # the residual, centred
    b = c * ag + (dot * rc).sum(-1) / max(n - 1, 1)  # E[<I, a> drop]
    beta = b / aa.clamp_min(1e-30)
    sq = drop**2 - c**2 * linear**2  # per draw; its mean + c^2 E<I,g>^2 is E[drop^2]
    value = sq.mean() + c**2 * gg - beta * b
    return value, sq - 2 * beta.unsqueeze(-1) * dot * rc


def infidelity(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    attr: torch.Tensor,
    n_perturbations: int = DEFAULT_N_PERTURBATIONS,
    sigma: float = DEFAULT_INFIDELITY_SIGMA,
    seed: int = 0,
    chunk_size: int | str = "auto",
    symmetric: bool = DEFAULT_SYMMETRIC_INFIDELITY,
    control_variate: bool = True,
) -> Estimate:
    """Normalised infidelity (Yeh et al.) of ``attr`` for ``fmodel``'s first target; see :func:`infidelity_score`
    and, for ``symmetric`` and ``control_variate``, :func:`noise_draws`."""
    draws = noise_draws(fmodel, x, n_perturbations, sigma, seed, chunk_size, symmetric, control_variate)
    return infidelity_score(draws, attr)


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
    region: torch.Tensor | None = None,
) -> Draws:
    """``n`` random sets of ``patch``-sized squares covering ``subset_fraction`` of the image, replaced by
    ``replacement`` (default: the image mean), and the drops of ``fmodel``'s first target."""
    return SubsetStream(fmodel, x, subset_fraction, patch, replacement, seed, chunk_size, region).draw(n)


class SubsetStream:
    """Faithfulness draws of one image in rounds, each :meth:`draw` continuing the seeded stream (see
    :func:`subset_draws` for the arguments)."""

    def __init__(
        self,
        fmodel: torch.nn.Module,
        x: torch.Tensor,
        subset_fraction: float = 0.1,
        patch: int = 16,
        replacement: torch.Tensor | None = None,
        seed: int = 0,
        chunk_size: int | str = "auto",
        region: torch.Tensor | None = None,
    ) -> None:
        self.fmodel, self.x, self.patch, self.replacement, self.chunk_size = fmodel, x, patch, replacement, chunk_size
        self.grid = tuple(math.ceil(d / patch) for d in x.shape[-2:])
        # the squares a set may hold: all, or those wholly inside the region (so no pixel outside it is replaced)
        if region is None:
            self.cells = torch.arange(self.grid[0] * self.grid[1])
        else:
            inside = region.to(torch.float32)[None, None]
            full = F.avg_pool2d(inside, patch, ceil_mode=True)[0, 0] >= 1.0 - 1e-6
            self.cells = full.flatten().nonzero().squeeze(1).cpu()
            if self.cells.numel() == 0:
                raise InputError(f"the perturbation region holds no whole {patch}x{patch} square for the "
                                 "Faithfulness Correlation's sets; use a larger region or a smaller patch")  # fmt: skip
        self.k = max(1, int(subset_fraction * self.cells.numel()))
        self.gen = generator(seed, "faithfulness")
        self.f0: torch.Tensor | None = None

    @torch.no_grad()
    def draw(self, n: int) -> Draws:
        """The next ``n`` patch sets and their drops (``n`` forwards, + 1 the first time)."""
        gh, gw = self.grid
        cells = torch.stack([self.cells[torch.randperm(self.cells.numel(), generator=self.gen)[: self.k]]
                             for _ in range(n)])  # fmt: skip
        grid = torch.zeros(n, gh * gw, dtype=torch.bool).scatter_(1, cells, True).view(n, 1, gh, gw)
        if self.f0 is None:
            self.f0 = self.fmodel(self.x)[0, 0]
        return patch_set_draws(self.fmodel, self.x, grid, self.patch, self.replacement, self.chunk_size, self.f0)


@torch.no_grad()
def patch_set_draws(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    grid: torch.Tensor,
    patch: int,
    replacement: torch.Tensor | None = None,
    chunk_size: int | str = "auto",
    f0: torch.Tensor | None = None,
) -> Draws:
    """Faithfulness draws for given sets of squares: ``grid`` ``(N, 1, gh, gw)`` marks each draw's
    ``patch``-sized squares, replaced by ``replacement`` (default: the image mean); ``f0`` the target on ``x``
    (computed when not given)."""
    h, w = x.shape[-2:]
    masks = grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[..., :h, :w].to(x.device)
    rep = fill_image(x, "mean") if replacement is None else replacement
    buf = ChunkBuffer(x)
    make = lambda s: replace_masked(x, masks[s], rep, buf(len(masks[s])))  # noqa: E731
    f0 = fmodel(x)[0, 0] if f0 is None else f0
    drop = f0 - predict_chunks(fmodel, len(masks), make, chunk_size)[:, 0]
    return Draws(masks, drop)


def faithfulness_score(draws: Draws, signed: torch.Tensor) -> Estimate:
    """Pearson correlation between the attribution sum in each set and the target's drop; 95 % CI by Fisher's z."""
    return faithfulness_from_sums((draws.perturbation[:, 0] * signed[0]).sum(dim=(-2, -1)), draws.drop)


def faithfulness_from_sums(sums: torch.Tensor, drop: torch.Tensor) -> Estimate:
    """Faithfulness Correlation from the per-set attribution sums and drops."""
    n = drop.numel()
    r = pearson(sums, drop)
    z, se = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), 1 / math.sqrt(max(n - 3, 1))
    # min/max keep r inside its interval when |r| ~ 1, where the clamped z rounds the bounds past r.
    return Estimate(r, n, min(math.tanh(z - 1.96 * se), r), max(math.tanh(z + 1.96 * se), r))


def faithfulness_correlation(
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
    """Faithfulness Correlation (Bhatt et al. 2020) of the signed map for ``fmodel``'s first target; see
    :func:`subset_draws` and :func:`faithfulness_score`."""
    draws = subset_draws(fmodel, x, n_subsets, subset_fraction, patch, replacement, seed, chunk_size)
    return faithfulness_score(draws, signed)


# Adaptive Monte Carlo (issue 17): draw in rounds until the scores of an image's maps are resolved.
DEFAULT_ROUND = (
    8  # draws per round (benchmarks/perturbation_count.py --adaptive: 8 stops sooner than 16, same criterion)
)
DEFAULT_TOLERANCE = 0.02  # scale-free: unexplained fraction (Infidelity), correlation (Faithfulness Correlation)
MIN_DRAWS = 32  # the first look at the variance needs some draws


def infidelity_influence(
    draws: Draws, maps: torch.Tensor, dots: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(values (M,), influence (M, n), scale)`` of the normalised infidelity of maps ``(M, C, H, W)`` on
    ``draws`` (:func:`infidelity_terms`); ``scale`` is the zero map's infidelity (the drops' energy), so
    ``value / scale`` is the fraction of it a map leaves unexplained. ``dots``: ``noise_dots(draws, maps)`` if
    already known (:class:`GrowingProducts`)."""
    dots = noise_dots(draws, maps) if dots is None else dots
    values, influence = infidelity_terms(dots, draws.drop, draws.linear, control_moments(draws, maps))
    zero = torch.zeros_like(maps[:1])  # its dots with every draw are 0: no product to compute
    nothing, _ = infidelity_terms(torch.zeros_like(dots[:1]), draws.drop, draws.linear, control_moments(draws, zero))
    return values, influence, float(nothing[0])


def subset_sums(draws: Draws, signed: torch.Tensor) -> torch.Tensor:
    """``(M, n)``: each signed map's ``(M, H, W)`` sum over each draw's patch set (float64)."""
    return torch.einsum("nhw,mhw->mn", draws.perturbation[:, 0].to(signed.dtype), signed).double()


def faithfulness_influence(
    draws: Draws, signed: torch.Tensor, sums: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(r (M,), influence (M, n), 1.0)``: the Faithfulness Correlation of signed maps ``(M, H, W)`` on ``draws``
    and each draw's influence on it (:func:`pearson_influence` of the maps' sums over each set and the drops);
    ``sums``: :func:`subset_sums` if already known."""
    sums = subset_sums(draws, signed) if sums is None else sums
    return *pearson_influence(sums, draws.drop.double()), 1.0


class GrowingProducts:
    """``product(draws, maps)`` ``(M, n)`` over draws that grow round by round (each call's draws begin with the
    last call's, as in :func:`sequential_draws`): each draw's products are computed once, not at every look.

    Example:
        >>> d = Draws(torch.randn(5, 3, 2, 2), torch.zeros(5))
        >>> grow = GrowingProducts(torch.ones(1, 3, 2, 2), noise_dots)
        >>> grow(d[:2]).shape, torch.allclose(grow(d), noise_dots(d, torch.ones(1, 3, 2, 2)))
        (torch.Size([1, 2]), True)
    """

    def __init__(self, maps: torch.Tensor, product: Callable[[Draws, torch.Tensor], torch.Tensor]) -> None:
        self.maps, self.product = maps, product
        self.known: torch.Tensor | None = None

    def __call__(self, draws: Draws) -> torch.Tensor:
        k = 0 if self.known is None else self.known.shape[-1]
        if len(draws) > k:
            new = self.product(draws[k:], self.maps)
            self.known = new if self.known is None else torch.cat([self.known, new], dim=-1)
        return self.known[..., : len(draws)]


def pearson_influence(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pearson's r of each row of ``a`` ``(M, n)`` with ``b`` ``(n,)``, and each observation's influence on it,
    ``u v - r (u^2 + v^2) / 2`` with ``u``, ``v`` the standardised values (the correlation's influence function:
    its std / sqrt(n) is r's standard error, (1 - r^2) / sqrt(n) for normal data)."""
    u = (a - a.mean(-1, keepdim=True)) / a.std(-1, correction=0, keepdim=True).clamp_min(1e-30)
    v = (b - b.mean()) / b.std(correction=0).clamp_min(1e-30)
    r = (u * v).mean(-1)
    return r, u * v - r.unsqueeze(-1) * (u * u + v * v) / 2


def resolved(
    values: torch.Tensor,
    influence: torch.Tensor,
    scale: float,
    tolerance: float,
    budget: int | None = None,
    z: float = 1.96,
) -> bool:
    """Whether drawing more can stop: every pair of maps is resolved at ``z`` (1.96: 95 %), from the interval of
    their paired difference (the same draws score both, so the noise they share cancels):

    - ordered: the interval excludes 0;
    - known: its half-width is within ``tolerance x scale`` (whether they tie is settled below the tolerance);
    - futile (with a ``budget``): even at the budget (the half-width shrinking as 1 / sqrt(n)) it would be neither,
      so the pair stays unresolved whatever is drawn: maps the draws cannot tell apart, whose order is a coin flip.

    One map alone: its own half-width is within the tolerance.
    """
    n = influence.shape[-1]
    t = tolerance * abs(scale)
    if len(values) == 1:
        return bool(z * influence[0].std() / math.sqrt(n) <= t)
    d = (values[:, None] - values[None, :]).abs()
    half = z * (influence[:, None] - influence[None, :]).std(-1) / math.sqrt(n)
    ok = (d > half) | (half <= t)
    if budget is not None and budget > n:
        at_budget = half * math.sqrt(n / budget)
        ok |= (at_budget > t) & (d <= at_budget)
    return bool(ok.all())


def sequential_draws(
    draw: Callable[[int], Draws],
    stat: Callable[[Draws], tuple[torch.Tensor, torch.Tensor, float]],
    budget: int,
    round_size: int = DEFAULT_ROUND,
    tolerance: float = DEFAULT_TOLERANCE,
    min_draws: int = MIN_DRAWS,
) -> Draws:
    """Draws in rounds of ``round_size`` (``draw(k)`` gives the next ``k``) until the maps' scores are
    :func:`resolved` (looked at from ``min_draws`` on: every pair ordered, known to the tolerance, or beyond what
    the budget could resolve) or ``budget`` draws are spent.

    Args:
        draw: the next ``k`` draws of the image's stream.
        stat: ``draws -> (values, influence, scale)`` of every map (:func:`infidelity_influence`,
            :func:`faithfulness_influence`).
        budget: the most draws.
        round_size: draws per round.
        tolerance: the scale-free gap below which two maps count as tied.
        min_draws: draws before the first look.

    Returns:
        All the draws made; ``len(result)`` is the count used.
    """
    draws = draw(min(round_size, budget))
    while len(draws) < budget:
        if len(draws) >= min(min_draws, budget) and resolved(*stat(draws), tolerance, budget):
            break
        draws = draws.cat(draw(min(round_size, budget - len(draws))))
    return draws
