"""Robustness metrics (Quantus' ``robustness`` family for dense targets): how much a method's map of the
whole-map mean depth moves when the input moves a little. Each draws its input perturbations once per image
(inside the perturbation region, seeded), so every method is scored on the same inputs, and makes one new map
per draw with the method being scored (the cost plan counts them as the method's passes).

The formulas are Quantus 0.6's, one map at a time: Max- and Avg-Sensitivity (Yeh et al. 2019: uniform noise,
``||a - a'||_F / ||a||_F``), the Local Lipschitz Estimate (Alvarez-Melis & Jaakkola 2018: Gaussian noise,
``max ||a' - a||_2 / ||x' - x||_2`` of max-normalised maps) and Relative Input / Output Stability (Agarwal et al.
2022: the map's relative change over the input's relative change, or over the change of the target in metres).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from depthscope.assess.registry import AssessmentMetric, Column, ImageContext, register_metric
from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution
from depthscope.seeding import generator

NORMALISE_HELP = (
    "divide every map by its largest magnitude before comparing (Quantus' normalise_by_max): compares "
    "the maps' shapes, not their units"
)
EPS_MIN = 1e-6  # Quantus' eps_min of the relative stabilities: stands in for zeros in denominators


def max_normalised(a: torch.Tensor) -> torch.Tensor:
    """``a / max |a|`` (left as is when all zero): Quantus' ``normalise_by_max`` on one map."""
    top = a.abs().max()
    return a / top if top > 0 else a


def sensitivities(a: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """``||a - a'_k||_F / ||a||_F`` per draw ``k``: the relative change of map ``a`` ``(C, H, W)`` in each of the
    maps ``perturbed`` ``(K, C, H, W)`` of perturbed inputs (Max-Sensitivity is the max, Avg- the mean).

    Example:
        >>> a = torch.ones(1, 2, 2)
        >>> sensitivities(a, torch.stack([a, 2 * a])).tolist()
        [0.0, 1.0]
    """
    a, p = a.double().flatten(), perturbed.double().flatten(1)
    return torch.linalg.vector_norm(a - p, dim=1) / torch.linalg.vector_norm(a)


def lipschitz_ratios(a: torch.Tensor, perturbed: torch.Tensor, x: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """``||a - a'_k||_2 / (||x - x'_k||_2 + 1e-10)`` per draw: the map's change per unit of input change
    (Quantus ``lipschitz_constant`` with Euclidean norms); ``x`` ``(3, H, W)``, ``xs`` ``(K, 3, H, W)``.

    Example:
        >>> x = torch.zeros(1, 1, 2)
        >>> [round(v, 6) for v in lipschitz_ratios(torch.zeros(1, 1, 2), torch.ones(1, 1, 1, 2), x, x[None] + 2).tolist()]
        [0.5]
    """
    num = torch.linalg.vector_norm(a.double().flatten() - perturbed.double().flatten(1), dim=1)
    return num / (torch.linalg.vector_norm(x.double().flatten() - xs.double().flatten(1), dim=1) + 1e-10)


def _relative_change(a: torch.Tensor, perturbed: torch.Tensor) -> torch.Tensor:
    """``||(a - a'_k) / a||_2`` per draw, zeros of ``a`` replaced by :data:`EPS_MIN` (Quantus)."""
    a, p = a.double().flatten(), perturbed.double().flatten(1)
    return torch.linalg.vector_norm((a - p) / (a + (a == 0) * EPS_MIN), dim=1)


def relative_input_stability(
    a: torch.Tensor, perturbed: torch.Tensor, x: torch.Tensor, xs: torch.Tensor
) -> torch.Tensor:
    """RIS per draw: the map's relative change over the input's relative change (Agarwal et al. 2022, as Quantus
    computes it; lower is more stable).

    Example:
        >>> x, a = torch.ones(1, 1, 2), torch.ones(1, 1, 2)
        >>> relative_input_stability(a, 1.5 * a[None], x, 2 * x[None]).tolist()
        [0.5]
    """
    den = _relative_change(x, xs)
    return _relative_change(a, perturbed) / (den + (den == 0) * EPS_MIN)


def relative_output_stability(
    a: torch.Tensor, perturbed: torch.Tensor, h: torch.Tensor, hs: torch.Tensor
) -> torch.Tensor:
    """ROS per draw: the map's relative change over the change of the model's output (Quantus: the Euclidean
    norm of ``h - h'_k``, not relative; here ``h`` is the target in metres, ``(T,)``, ``hs`` ``(K, T)``).

    Example:
        >>> a = torch.ones(1, 1, 2)
        >>> relative_output_stability(a, 1.5 * a[None], torch.tensor([3.0]), torch.tensor([[3.5]])).tolist()
        [1.4142135623730951]
    """
    den = torch.linalg.vector_norm(h.double().flatten() - hs.double().flatten(1), dim=1)
    return _relative_change(a, perturbed) / (den + (den == 0) * EPS_MIN)


@dataclass
class InputDraws:
    """One image's perturbed inputs ``xs`` ``(K, 1, 3, H, W)`` and the target on each ``(K,)`` (metres), with the
    image context the new maps are made in."""

    ctx: ImageContext
    xs: list[torch.Tensor]
    targets: torch.Tensor
    target: torch.Tensor  # the unperturbed image's target ``()``


@dataclass(frozen=True)
class RobustnessConfig:
    n_samples: int = field(default=8, metadata={"help": "perturbed inputs per image (one new map each, per method)"})
    noise: float = field(
        default=0.02,
        metadata={"help": "input noise in units of the [0, 1] pixel range: the half-width of uniform noise "
                  "(sensitivity) or the std of Gaussian noise (local_lipschitz, relative_stability)"},
    )  # fmt: skip
    normalise: bool = field(default=True, metadata={"help": NORMALISE_HELP})
    metric_name: ClassVar[str] = "robustness"

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise InputError(f"{self.metric_name}_n_samples must be >= 1, got {self.n_samples}")
        if not 0 < self.noise <= 1:
            raise InputError(f"{self.metric_name}_noise must be in (0, 1] (pixel range), got {self.noise}")


class RobustnessMetric(AssessmentMetric):
    """A metric over maps of perturbed inputs: ``prepare`` draws ``n_samples`` inputs around the image (noise of
    :attr:`distribution` inside the perturbation region, clamped to [0, 1]) and their targets; ``score`` makes the
    scored method's map of each and compares it with the map being scored (:meth:`compare`)."""

    category = "robustness"
    distribution: ClassVar[str]  # "uniform" or "gaussian"

    def prepare(self, ctx: ImageContext) -> InputDraws:
        c, x = self.config, ctx.x
        g = generator(ctx.seed, f"robustness_{self.distribution}")
        shape = (c.n_samples, *x.shape[1:])
        if self.distribution == "uniform":
            noise = (torch.rand(shape, generator=g) * 2 - 1) * c.noise
        else:
            noise = torch.randn(shape, generator=g) * c.noise
        noise = noise.to(x)
        if ctx.region is not None:
            noise = noise * ctx.region.to(x)
        xs = (x + noise).clamp(0, 1)
        with torch.no_grad():
            targets = torch.cat([ctx.fmodel(xs[k : k + 1])[:, 0] for k in range(len(xs))])
            target = ctx.fmodel(x)[0, 0]
        return InputDraws(ctx, [xs[k : k + 1] for k in range(len(xs))], targets, target)

    def score(self, draws: InputDraws, attribution: Attribution) -> dict[str, Any]:
        method, ctx = attribution.method, draws.ctx
        perturbed = torch.stack([ctx.remap(method, x=xk).raw[0] for xk in draws.xs])
        a = attribution.raw[0]
        if self.config.normalise:
            a, perturbed = max_normalised(a), torch.stack([max_normalised(p) for p in perturbed])
        return self.compare(draws, a, perturbed)

    def compare(self, draws: InputDraws, a: torch.Tensor, perturbed: torch.Tensor) -> dict[str, Any]:
        """The scores of map ``a`` ``(C, H, W)`` against the maps ``(K, C, H, W)`` of the perturbed inputs."""
        raise NotImplementedError

    def passes(self, differentiable: bool = True, row: Any = None) -> dict[str, tuple[int, int]]:
        return {"draws": (self.config.n_samples + 1, 0)}  # the targets of the perturbed inputs and of the image

    def remaps(self) -> int:
        return self.config.n_samples


def _xs(draws: InputDraws) -> torch.Tensor:
    return torch.cat(draws.xs)


# Each metric's default ``normalise`` is Quantus 0.6's: off for the sensitivities and the relative stabilities, on
# for the Local Lipschitz Estimate.
@dataclass(frozen=True)
class SensitivityConfig(RobustnessConfig):
    normalise: bool = field(default=False, metadata={"help": NORMALISE_HELP})
    metric_name: ClassVar[str] = "sensitivity"


@register_metric
class Sensitivity(RobustnessMetric):
    """Max- and Avg-Sensitivity (Yeh et al. 2019): the largest and the mean relative change of the map under
    uniform input noise."""

    name = "sensitivity"
    headline = "max_sensitivity"
    higher_is_better = False
    distribution = "uniform"
    Config = SensitivityConfig
    columns = (
        Column("max_sensitivity", higher_is_better=False,
               description="Max-Sensitivity (Yeh et al. 2019, Quantus): the largest ||a - a'|| / ||a|| over maps a' of "
               "inputs with uniform noise (max-normalised maps)"),
        Column("avg_sensitivity", higher_is_better=False,
               description="Avg-Sensitivity: the mean of the same ratios"),
    )  # fmt: skip

    def compare(self, draws: InputDraws, a: torch.Tensor, perturbed: torch.Tensor) -> dict[str, Any]:
        s = sensitivities(a, perturbed)
        return {"max_sensitivity": float(s.max()), "avg_sensitivity": float(s.mean())}


@dataclass(frozen=True)
class LipschitzConfig(RobustnessConfig):
    metric_name: ClassVar[str] = "local_lipschitz"


@register_metric
class LocalLipschitz(RobustnessMetric):
    """Local Lipschitz Estimate (Alvarez-Melis & Jaakkola 2018): the largest change of the map per unit of input
    change under Gaussian input noise."""

    name = "local_lipschitz"
    higher_is_better = False
    distribution = "gaussian"
    Config = LipschitzConfig
    columns = (
        Column("local_lipschitz", higher_is_better=False,
               description="Local Lipschitz Estimate (Alvarez-Melis & Jaakkola 2018, Quantus): max ||a - a'||_2 / "
               "||x - x'||_2 over inputs x' with Gaussian noise (max-normalised maps)"),
    )  # fmt: skip

    def compare(self, draws: InputDraws, a: torch.Tensor, perturbed: torch.Tensor) -> dict[str, Any]:
        x = draws.ctx.x[0]
        return {"local_lipschitz": float(lipschitz_ratios(a, perturbed, x, _xs(draws)).max())}


@dataclass(frozen=True)
class StabilityConfig(RobustnessConfig):
    normalise: bool = field(default=False, metadata={"help": NORMALISE_HELP})
    metric_name: ClassVar[str] = "relative_stability"


@register_metric
class RelativeStability(RobustnessMetric):
    """Relative Input and Output Stability (Agarwal et al. 2022): the largest relative change of the map over the
    relative change of the input (RIS) or over the change of the target depth (ROS), under Gaussian noise."""

    name = "relative_stability"
    headline = "relative_input_stability"
    higher_is_better = False
    distribution = "gaussian"
    Config = StabilityConfig
    columns = (
        Column("relative_input_stability", higher_is_better=False,
               description="RIS (Agarwal et al. 2022, Quantus): max over noisy inputs of ||(a - a')/a|| / ||(x - x')/x||"),
        Column("relative_output_stability", higher_is_better=False, unit="1/m",
               description="ROS: max over noisy inputs of ||(a - a')/a|| / |y - y'|, y the target depth in metres"),
    )  # fmt: skip

    def compare(self, draws: InputDraws, a: torch.Tensor, perturbed: torch.Tensor) -> dict[str, Any]:
        x = draws.ctx.x[0]
        ris = relative_input_stability(a, perturbed, x, _xs(draws))
        ros = relative_output_stability(a, perturbed, draws.target[None], draws.targets[:, None])
        return {"relative_input_stability": float(ris.max()), "relative_output_stability": float(ros.max())}
