"""The built-in assessment metrics (SPEC §4), each one registered class over the pure functions of
``perturbation`` and ``fidelity``: perturbation curves with ``af_perturbation``, ``af_depth_correlation``,
Infidelity and the Faithfulness Correlation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from depthscope.assess.fidelity import (
    DEFAULT_INFIDELITY_SIGMA,
    DEFAULT_ROUND,
    DEFAULT_SYMMETRIC_INFIDELITY,
    DEFAULT_TOLERANCE,
    Draws,
    Estimate,
    GrowingProducts,
    NoiseStream,
    SubsetStream,
    af_depth_correlation,
    af_perturbation,
    check_draws,
    faithfulness_influence,
    faithfulness_score,
    infidelity_influence,
    infidelity_score,
    noise_dots,
    sequential_draws,
    subset_sums,
)
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, ORDERS, Curves, perturbation_curves
from depthscope.assess.registry import METRICS, AssessmentMetric, Column, ImageContext, register_metric
from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution
from depthscope.ops.fills import REPLACEMENTS
from depthscope.seeding import generator


def estimate_columns(
    head: str, prefix: str, higher_is_better: bool, unit: str = "", description: str = ""
) -> tuple[Column, ...]:
    """The columns of a Monte-Carlo :class:`~depthscope.assess.fidelity.Estimate`: the value ``head``, and
    ``<prefix>_n``, ``<prefix>_ci_low``, ``<prefix>_ci_high`` (draws and 95 % interval, not summarised)."""
    return (
        Column(head, higher_is_better=higher_is_better, unit=unit, description=description),
        Column(f"{prefix}_n", summarised=False),
        *(Column(f"{prefix}_ci_{end}", summarised=False, unit=unit) for end in ("low", "high")),
    )


def estimate_row(head: str, prefix: str, e: Estimate) -> dict[str, Any]:
    """The values of :func:`estimate_columns` for ``e``."""
    return {head: e.value, f"{prefix}_n": e.n, f"{prefix}_ci_low": e.ci_low, f"{prefix}_ci_high": e.ci_high}


# field metadata: "help" for --help; "aliases" are the CLI flags this option had before it had a generated one
N_HELP = "random draws, the most an adaptive run spends (default: the run's --n-perturbations)"


@dataclass(frozen=True)
class MonteCarloConfig:
    """The draw options of a Monte-Carlo metric: a budget, and the adaptive stopping rule
    (:func:`~depthscope.assess.fidelity.sequential_draws`)."""

    n_perturbations: int | None = field(default=None, metadata={"help": N_HELP})
    adaptive: bool = field(
        default=True,
        metadata={"help": "draw in rounds until every pair of the image's maps is resolved at 95 percent (ordered, "
                  "their difference known to the tolerance, or beyond what the budget could resolve), at most "
                  "n_perturbations draws; off: always n_perturbations"},
    )  # fmt: skip
    tolerance: float = field(
        default=DEFAULT_TOLERANCE,
        metadata={"help": "adaptive: the half-width to which a pair's difference counts as known (share of the "
                  "drops' energy for Infidelity, correlation for the Faithfulness Correlation)"},
    )  # fmt: skip
    round_size: int = field(default=DEFAULT_ROUND, metadata={"help": "adaptive: draws per round"})
    metric_name: ClassVar[str] = "monte_carlo"

    def __post_init__(self) -> None:
        name = self.metric_name
        check_draws(f"{name}_n_perturbations", self.n_perturbations)
        if not 0 < self.tolerance < 1:
            raise InputError(f"{name}_tolerance must be in (0, 1), got {self.tolerance}")
        if self.round_size < 2:
            raise InputError(f"{name}_round_size must be >= 2 draws, got {self.round_size}")


class MonteCarloMetric(AssessmentMetric):
    """A metric scored on random draws that do not depend on the map. Fixed draws: ``prepare`` once per image,
    ``score`` per map. Adaptive (``config.adaptive``): the maps of the image decide when to stop drawing, so all of
    them are scored together (:meth:`score_maps`)."""

    head: str
    prefix: str

    @property
    def joint(self) -> bool:
        return self.config.adaptive

    def stream(self, ctx: ImageContext) -> NoiseStream | SubsetStream:
        """The image's draws, round by round."""
        raise NotImplementedError

    def product(self, draws: Draws, maps: torch.Tensor) -> torch.Tensor:
        """``(M, n)``: what each stacked map contributes per draw (the part of :meth:`stat` that grows with the
        draws, computed once per draw across looks)."""
        raise NotImplementedError

    def stat(
        self, draws: Draws, maps: torch.Tensor, products: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(values, influence, scale)`` of the stacked maps on ``draws`` given their :meth:`product` s (the
        stopping rule's input)."""
        raise NotImplementedError

    def map_of(self, attribution: Attribution) -> torch.Tensor:
        """What the metric scores of a map (its first target)."""
        raise NotImplementedError

    def prepare(self, ctx: ImageContext) -> Draws:
        return self.stream(ctx).draw(self.config.n_perturbations)

    def score(self, draws: Draws, attribution: Attribution) -> dict[str, Any]:
        return estimate_row(self.head, self.prefix, self.estimate(draws, attribution))

    def estimate(self, draws: Draws, attribution: Attribution) -> Estimate:
        raise NotImplementedError

    def score_maps(self, ctx: ImageContext, attributions: Mapping[str, Attribution]) -> dict[str, dict[str, Any]]:
        if not self.joint:
            return super().score_maps(ctx, attributions)
        c, stream = self.config, self.stream(ctx)
        maps = torch.stack([self.map_of(a) for a in attributions.values()])
        products = GrowingProducts(maps, self.product)
        draws = sequential_draws(stream.draw, lambda d: self.stat(d, maps, products(d)), c.n_perturbations,
                                 c.round_size, c.tolerance)  # fmt: skip
        return {m: estimate_row(self.head, self.prefix, self.estimate(draws, a)) for m, a in attributions.items()}

    def draw_passes(self, n: int) -> int:
        """Forwards of ``n`` draws."""
        raise NotImplementedError

    def passes(self, differentiable: bool = True, row: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
        n = int(row[f"{self.prefix}_n"]) if row is not None else self.config.n_perturbations
        return {"draws": (self.draw_passes(n), 0)}


@dataclass(frozen=True)
class CurvesConfig:
    fractions: tuple[float, ...] = field(
        default=DEFAULT_FRACTIONS, metadata={"help": "fractions of pixels perturbed, starting at 0"}
    )
    replacement: str = field(
        default="mean",
        metadata={"help": f"what perturbed pixels become: {', '.join(REPLACEMENTS)}", "aliases": ["--replacement"]},
    )
    patch: int = field(
        default=1, metadata={"help": "perturbation granularity in pixels (1 = pixel)", "aliases": ["--patch"]}
    )

    def __post_init__(self) -> None:
        check_curve_protocol("curves", self.fractions, self.replacement, self.patch)


def check_curve_protocol(owner: str, fractions: tuple[float, ...], replacement: str, patch: int) -> None:
    """One clear error for a perturbation protocol that cannot run (``owner`` names the metric's options)."""
    f = fractions
    if len(f) < 2 or f[0] != 0 or any(not 0 < b <= 1 for b in f[1:]) or list(f) != sorted(set(f)):
        raise InputError(f"{owner}_fractions must rise from 0 to at most 1 (e.g. 0,0.1,0.2), got {list(f)}")
    if replacement not in REPLACEMENTS:
        raise InputError(f"unknown replacement {replacement!r}; valid replacements: {', '.join(REPLACEMENTS)}")
    if patch < 1:
        raise InputError(f"{owner}_patch must be >= 1 pixel, got {patch}")


class CurveMetric(AssessmentMetric):
    """A metric scored on perturbation curves under its config's protocol (``fractions``, ``replacement``,
    ``patch``) and the image's perturbation region: one unperturbed forward and one per order (``orders``) and
    fraction > 0."""

    orders: ClassVar[tuple[str, ...]] = ORDERS

    def passes(self, differentiable: bool = True, row: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
        moved = sum(1 for f in self.config.fractions if f > 0)
        return {"scores": (1 + len(self.orders) * moved, 0)}  # the unperturbed image, then every order x fraction

    def curves(self, ctx: ImageContext, score: torch.Tensor, gt: torch.Tensor | None = None) -> Curves:
        """The curves of relevance ``score`` ``(H, W)`` on the image of ``ctx``."""
        c = self.config
        return perturbation_curves(ctx.model, ctx.x, score, c.fractions, c.replacement, c.patch, ctx.seed, gt,
                                   ctx.chunk_size, ctx.region, self.orders)  # fmt: skip


@register_metric
class PerturbationCurves(CurveMetric):
    """MoRF / LeRF / random perturbation curves (RMSE in metres between the original and the perturbed
    prediction) and their reading as Attribution Fidelity, ``af_perturbation`` in [-1, 1]."""

    name = "curves"
    headline = "af_perturbation"
    category = "fidelity"
    higher_is_better = True
    Config = CurvesConfig
    columns = (
        Column(
            "af_perturbation",
            higher_is_better=True,
            description="Attribution Fidelity: mean over "
            "fractions of (d_MoRF - d_LeRF) / (d_MoRF + d_LeRF), d the RMSE to the original prediction, in "
            "[-1, 1]; 1: only the pixels the map ranks first move the depth, 0: the ranking carries nothing",
        ),
        Column(
            "morf_auc",
            higher_is_better=True,
            unit="m",
            description="area under the MoRF curve (most relevant pixels perturbed first): RMSE to the original "
            "prediction, averaged over the fractions",
        ),
        Column(
            "lerf_auc",
            higher_is_better=False,
            unit="m",
            description="area under the LeRF curve (least relevant first), as morf_auc",
        ),
        Column("random_auc", unit="m", description="area under the random-order curve: the map-free reference"),
        *(Column(f"{o}_curve", summarised=False, unit="m") for o in ORDERS),
        *(
            Column(
                f"{o}_fragmentation",
                summarised=False,
                description=f"per fraction, the boundary length / area "
                f"of the {o} order's perturbed set (pixels; 0.5 for one 8x8 patch, 4 for isolated pixels)",
            )
            for o in ORDERS
        ),
        Column("fractions", summarised=False),
    )

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        curves = self.curves(ctx, attribution.magnitude[0], ctx.gt)
        af = af_perturbation(curves.rmse["morf"], curves.rmse["lerf"])
        return {
            "af_perturbation": af,
            **{f"{o}_auc": curves.auc(o) for o in ORDERS},
            **{f"{o}_curve": json.dumps([round(v, 6) for v in curves.rmse[o]]) for o in ORDERS},
            **{f"{o}_fragmentation": json.dumps([round(v, 4) for v in curves.fragmentation[o]]) for o in ORDERS},
            "fractions": json.dumps(curves.fractions),
        }


def shuffle_blocks(score: torch.Tensor, block: int, seed: int) -> torch.Tensor:
    """``score`` ``(H, W)`` with its whole ``block`` x ``block`` tiles moved to random places (seeded; the partial
    tiles at the right and bottom edges stay): the same values and the same structure inside every tile, no
    relation to where things are in the image. The structure-matched control of a map.

    Example:
        >>> s = torch.arange(16.0).view(4, 4)
        >>> t = shuffle_blocks(s, 2, seed=0)
        >>> sorted(t.flatten().tolist()) == sorted(s.flatten().tolist()), t[:2, :2].tolist() in (
        ...     [[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [6.0, 7.0]], [[8.0, 9.0], [12.0, 13.0]], [[10.0, 11.0], [14.0, 15.0]])
        (True, True)
    """
    h, w = score.shape
    gh, gw = h // block, w // block
    if gh * gw < 2:
        raise InputError(f"matched_control_block {block} leaves fewer than 2 whole tiles in a {h}x{w} map")
    tiles = (
        score[: gh * block, : gw * block].reshape(gh, block, gw, block).permute(0, 2, 1, 3).reshape(-1, block, block)
    )
    order = torch.randperm(gh * gw, generator=generator(seed, "matched_control")).to(score.device)
    moved = tiles[order].reshape(gh, gw, block, block).permute(0, 2, 1, 3).reshape(gh * block, gw * block)
    out = score.clone()
    out[: gh * block, : gw * block] = moved
    return out


@dataclass(frozen=True)
class MatchedControlConfig:
    fractions: tuple[float, ...] = field(default=DEFAULT_FRACTIONS, metadata={"help": "as the curves' (the protocol)"})
    replacement: str = field(default="mean", metadata={"help": "as the curves' (the protocol sets both)"})
    patch: int = field(default=1, metadata={"help": "as the curves' (the protocol sets both)"})
    block: int = field(default=32, metadata={"help": "side of the map's tiles that are shuffled, in pixels"})

    def __post_init__(self) -> None:
        check_curve_protocol("matched_control", self.fractions, self.replacement, self.patch)
        if self.block < 1:
            raise InputError(f"matched_control_block must be >= 1 pixel, got {self.block}")


@register_metric
class MatchedControl(CurveMetric):
    """The structure-matched control of every map: ``af_perturbation`` of the map with its 32-px tiles shuffled
    (same values and local structure, random place), under the curves' protocol and region. An i.i.d. random map
    has no spatial structure, so its curves differ from any real map's in how fragmented the perturbed set is;
    a map should beat its own shuffled tiles, not only noise."""

    name = "matched_control"
    orders = ("morf", "lerf")
    headline = "af_matched"
    category = "fidelity"
    higher_is_better = None  # a reference for af_perturbation, not a score of the map
    Config = MatchedControlConfig
    columns = (
        Column(
            "af_matched",
            higher_is_better=None,
            description="af_perturbation of the map's own tiles shuffled (the structure-matched control): what the "
            "map's value distribution and local structure score without its placement; compare with "
            "af_perturbation",
        ),
    )

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        curves = self.curves(ctx, shuffle_blocks(attribution.magnitude[0], self.config.block, ctx.seed))
        return {"af_matched": af_perturbation(curves.rmse["morf"], curves.rmse["lerf"])}


@register_metric
class DepthCorrelation(AssessmentMetric):
    """``af_depth_correlation``: Pearson correlation of the map's magnitude with the predicted depth map."""

    name = "af_depth_correlation"
    category = "fidelity"
    higher_is_better = True
    columns = (
        Column(
            "af_depth_correlation",
            higher_is_better=True,
            description="Pearson correlation of the map's magnitude with the predicted depth over the image's "
            "pixels (the paper's second AF reading)",
        ),
    )

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        return {"af_depth_correlation": af_depth_correlation(attribution.magnitude[0], ctx.depth)}


@dataclass(frozen=True)
class InfidelityConfig(MonteCarloConfig):
    sigma: float = field(
        default=DEFAULT_INFIDELITY_SIGMA, metadata={"help": "noise std in units of the [0, 1] pixel range"}
    )
    symmetric: bool = field(
        default=DEFAULT_SYMMETRIC_INFIDELITY,
        metadata={
            "help": "score the odd part (f(x+I) - f(x-I)) / 2 of the response (2x forwards), dropping the even part "
            "no attribution can explain",
            "aliases": ["--symmetric-infidelity"],
        },
    )
    control_variate: bool = field(
        default=True,
        metadata={"help": "the target's gradient as a control variate (one backward; same expectation, narrower CI); "
                  "off: Captum's plain Monte Carlo"},
    )  # fmt: skip
    metric_name: ClassVar[str] = "infidelity"

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise InputError(f"infidelity_sigma must be > 0 (noise std in the [0, 1] pixel range), got {self.sigma}")
        super().__post_init__()


@register_metric
class Infidelity(MonteCarloMetric):
    """Normalised Infidelity (Yeh et al., Captum's definition), m^2, with its draw count and 95 % CI; adaptive by
    default (draws until the image's maps are resolved, see :class:`MonteCarloConfig`)."""

    name = "infidelity"
    category = "faithfulness"
    higher_is_better = False
    Config = InfidelityConfig
    head = prefix = "infidelity"
    columns = estimate_columns(
        "infidelity",
        "infidelity",
        higher_is_better=False,
        unit="m^2",
        description="Infidelity (Yeh et al. 2019): mean squared gap between the map's predicted and the model's "
        "actual target change under Gaussian input noise",
    )

    def _control_variate(self, differentiable: bool) -> bool:
        return self.config.control_variate and differentiable  # int8: plain Monte Carlo

    def stream(self, ctx: ImageContext) -> NoiseStream:
        c = self.config
        cv = self._control_variate(ctx.model.differentiable)
        return NoiseStream(ctx.fmodel, ctx.x, c.sigma, ctx.seed, ctx.chunk_size, c.symmetric, cv, ctx.region)

    def map_of(self, attribution: Attribution) -> torch.Tensor:
        return attribution.raw[0].expand(3, *attribution.raw.shape[-2:])  # a one-channel map: every channel

    def product(self, draws: Draws, maps: torch.Tensor) -> torch.Tensor:
        return noise_dots(draws, maps)

    def stat(
        self, draws: Draws, maps: torch.Tensor, products: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        return infidelity_influence(draws, maps, products)

    def estimate(self, draws: Draws, attribution: Attribution) -> Estimate:
        return infidelity_score(draws, attribution.raw)

    def draw_passes(self, n: int) -> int:
        return n * (2 if self.config.symmetric else 1) + (0 if self.config.symmetric else 1)  # + f(x)

    def passes(self, differentiable: bool = True, row: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
        ((forwards, _),) = super().passes(differentiable, row).values()
        gradient = int(self._control_variate(differentiable))  # the control variate's forward + backward
        return {"draws": (forwards + gradient, gradient)}


@dataclass(frozen=True)
class FaithfulnessConfig(MonteCarloConfig):
    subset_fraction: float = field(default=0.1, metadata={"help": "share of the image each random set covers"})
    patch: int = field(default=16, metadata={"help": "side of the squares the sets are made of, in pixels"})
    metric_name: ClassVar[str] = "faithfulness_correlation"

    def __post_init__(self) -> None:
        if not 0 < self.subset_fraction <= 1:
            raise InputError(f"faithfulness_correlation_subset_fraction must be in (0, 1], got {self.subset_fraction}")
        if self.patch < 1:
            raise InputError(f"faithfulness_correlation_patch must be >= 1 pixel, got {self.patch}")
        super().__post_init__()


@register_metric
class FaithfulnessCorrelation(MonteCarloMetric):
    """Faithfulness Correlation (Bhatt et al. 2020): Pearson correlation between the map's sum over random
    patch sets and the drop of the target when they are replaced by the image mean, with a Fisher-z 95 % CI;
    adaptive by default, as Infidelity."""

    name = "faithfulness_correlation"
    category = "faithfulness"
    higher_is_better = True
    Config = FaithfulnessConfig
    head, prefix = "faithfulness_correlation", "faithfulness"
    columns = estimate_columns(
        "faithfulness_correlation",
        "faithfulness",
        higher_is_better=True,
        description="Faithfulness Correlation (Bhatt et al. 2020, Quantus): Pearson correlation of the attribution "
        "removed with the target change, over random pixel subsets",
    )

    def stream(self, ctx: ImageContext) -> SubsetStream:
        c = self.config
        return SubsetStream(ctx.fmodel, ctx.x, c.subset_fraction, c.patch, seed=ctx.seed, chunk_size=ctx.chunk_size,
                            region=ctx.region)  # fmt: skip

    def map_of(self, attribution: Attribution) -> torch.Tensor:
        return attribution.signed[0]

    def product(self, draws: Draws, maps: torch.Tensor) -> torch.Tensor:
        return subset_sums(draws, maps)

    def stat(
        self, draws: Draws, maps: torch.Tensor, products: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        return faithfulness_influence(draws, maps, products)

    def estimate(self, draws: Draws, attribution: Attribution) -> Estimate:
        return faithfulness_score(draws, attribution.signed)

    def draw_passes(self, n: int) -> int:
        return 1 + n  # f(x), then every patch set replaced


# Until 2026-12-06 this metric was called the Faithfulness Estimate; Quantus gives that name to Alvarez-Melis &
# Jaakkola's one-feature-at-a-time score, and this one (random sets, Pearson) to Bhatt et al.'s Faithfulness Correlation.
METRICS.renamed["faithfulness_estimate"] = "faithfulness_correlation"
