"""The built-in assessment metrics (SPEC §4), each one registered class over the pure functions of
``perturbation`` and ``fidelity``: perturbation curves with ``af_perturbation``, ``af_depth_correlation``,
Infidelity and the Faithfulness Estimate."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from depthscope.assess.fidelity import (
    DEFAULT_INFIDELITY_SIGMA,
    DEFAULT_SYMMETRIC_INFIDELITY,
    Draws,
    Estimate,
    af_depth_correlation,
    af_perturbation,
    check_draws,
    faithfulness_score,
    infidelity_score,
    noise_draws,
    subset_draws,
)
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, ORDERS, perturbation_curves
from depthscope.assess.registry import AssessmentMetric, Column, ImageContext, register_metric
from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution
from depthscope.ops.fills import REPLACEMENTS


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
N_HELP = "random draws (default: the run's --n-perturbations)"


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
        f = self.fractions
        if len(f) < 2 or f[0] != 0 or any(not 0 < b <= 1 for b in f[1:]) or list(f) != sorted(set(f)):
            raise InputError(f"curves_fractions must rise from 0 to at most 1 (e.g. 0,0.1,0.2), got {list(f)}")
        if self.replacement not in REPLACEMENTS:
            raise InputError(f"unknown replacement {self.replacement!r}; valid replacements: {', '.join(REPLACEMENTS)}")
        if self.patch < 1:
            raise InputError(f"curves_patch must be >= 1 pixel, got {self.patch}")


@register_metric
class PerturbationCurves(AssessmentMetric):
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
        Column("fractions", summarised=False),
    )

    def passes(self, differentiable: bool = True) -> dict[str, tuple[int, int]]:
        moved = sum(1 for f in self.config.fractions if f > 0)
        return {"scores": (1 + len(ORDERS) * moved, 0)}  # the unperturbed image, then every order x fraction

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        c = self.config
        curves = perturbation_curves(
            ctx.model, ctx.x, attribution.magnitude[0], c.fractions, c.replacement, c.patch, ctx.seed, ctx.gt,
            ctx.chunk_size,
        )  # fmt: skip
        af = af_perturbation(curves.rmse["morf"], curves.rmse["lerf"])
        return {
            "af_perturbation": af,
            **{f"{o}_auc": curves.auc(o) for o in ORDERS},
            **{f"{o}_curve": json.dumps([round(v, 6) for v in curves.rmse[o]]) for o in ORDERS},
            "fractions": json.dumps(curves.fractions),
        }


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
class InfidelityConfig:
    n_perturbations: int | None = field(default=None, metadata={"help": N_HELP})
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

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise InputError(f"infidelity_sigma must be > 0 (noise std in the [0, 1] pixel range), got {self.sigma}")
        check_draws("infidelity_n_perturbations", self.n_perturbations)


@register_metric
class Infidelity(AssessmentMetric):
    """Normalised Infidelity (Yeh et al., Captum's definition), m^2, with its draw count and 95 % CI."""

    name = "infidelity"
    category = "faithfulness"
    higher_is_better = False
    Config = InfidelityConfig
    columns = estimate_columns(
        "infidelity",
        "infidelity",
        higher_is_better=False,
        unit="m^2",
        description="Infidelity (Yeh et al. 2019): mean squared gap between the map's predicted and the model's "
        "actual target change under Gaussian input noise",
    )

    def prepare(self, ctx: ImageContext) -> Draws:
        c = self.config
        control_variate = c.control_variate and ctx.model.differentiable  # int8: plain Monte Carlo
        return noise_draws(
            ctx.fmodel, ctx.x, c.n_perturbations, c.sigma, ctx.seed, ctx.chunk_size, c.symmetric, control_variate
        )

    def passes(self, differentiable: bool = True) -> dict[str, tuple[int, int]]:
        c = self.config
        forwards = c.n_perturbations * (2 if c.symmetric else 1) + (0 if c.symmetric else 1)  # + f(x)
        gradient = int(c.control_variate and differentiable)  # the control variate's forward + backward
        return {"draws": (forwards + gradient, gradient)}

    def score(self, draws: Draws, attribution: Attribution) -> dict[str, Any]:
        return estimate_row("infidelity", "infidelity", infidelity_score(draws, attribution.raw))


@dataclass(frozen=True)
class FaithfulnessConfig:
    n_perturbations: int | None = field(default=None, metadata={"help": N_HELP})
    subset_fraction: float = field(default=0.1, metadata={"help": "share of the image each random set covers"})
    patch: int = field(default=16, metadata={"help": "side of the squares the sets are made of, in pixels"})

    def __post_init__(self) -> None:
        if not 0 < self.subset_fraction <= 1:
            raise InputError(f"faithfulness_estimate_subset_fraction must be in (0, 1], got {self.subset_fraction}")
        if self.patch < 1:
            raise InputError(f"faithfulness_estimate_patch must be >= 1 pixel, got {self.patch}")
        check_draws("faithfulness_estimate_n_perturbations", self.n_perturbations)


@register_metric
class FaithfulnessEstimate(AssessmentMetric):
    """Faithfulness Estimate (Alvarez-Melis & Jaakkola): Pearson correlation between the map's sum over random
    patch sets and the drop of the target when they are replaced by the image mean, with a Fisher-z 95 % CI."""

    name = "faithfulness_estimate"
    category = "faithfulness"
    higher_is_better = True
    Config = FaithfulnessConfig
    columns = estimate_columns(
        "faithfulness_estimate",
        "faithfulness",
        higher_is_better=True,
        description="Faithfulness Estimate (Alvarez-Melis & Jaakkola 2018): Pearson correlation of the attribution "
        "removed with the target change, over random pixel subsets",
    )

    def prepare(self, ctx: ImageContext) -> Draws:
        c = self.config
        return subset_draws(
            ctx.fmodel, ctx.x, c.n_perturbations, c.subset_fraction, c.patch, seed=ctx.seed, chunk_size=ctx.chunk_size
        )

    def passes(self, differentiable: bool = True) -> dict[str, tuple[int, int]]:
        return {"draws": (1 + self.config.n_perturbations, 0)}  # f(x), then every patch set replaced

    def score(self, draws: Draws, attribution: Attribution) -> dict[str, Any]:
        return estimate_row("faithfulness_estimate", "faithfulness", faithfulness_score(draws, attribution.signed))
