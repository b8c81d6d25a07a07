"""Complexity metrics of a map (Quantus' ``complexity`` family for dense targets): how concentrated the relevance
is, computed from the map alone (no model pass). Both read the magnitude ``|a|`` scaled to a maximum of 1, as
Quantus does by default (``abs=True``, ``normalise_by_max``), so their values equal Quantus' on the same map."""

from __future__ import annotations

from typing import Any

import torch

from depthscope.assess.registry import AssessmentMetric, Column, ImageContext, register_metric
from depthscope.explain.attribution import Attribution


def _scaled(a: torch.Tensor) -> torch.Tensor:
    """``|a|`` flattened, in float64, divided by its maximum (left as is when all zero)."""
    v = a.abs().flatten().double()
    top = v.max()
    return v / top if top > 0 else v


def sparseness(a: torch.Tensor) -> float:
    """Gini index of ``|a|`` (Chalasani et al. 2020; Quantus ``Sparseness``): 0 for a uniform map, towards 1 when
    the relevance sits on few pixels.

    Example:
        >>> round(sparseness(torch.ones(4, 4)), 6), round(sparseness(torch.eye(4)), 3)
        (0.0, 0.75)
    """
    v = torch.sort(_scaled(a) + 1e-7).values
    n = v.numel()
    k = torch.arange(1, n + 1, dtype=v.dtype)
    return float(((2 * k - n - 1) * v).sum() / (n * v.sum()))


def complexity(a: torch.Tensor) -> float:
    """Entropy (nats) of ``|a|`` as a distribution over pixels (Bhatt et al. 2020; Quantus ``Complexity``): log N
    for a uniform map of N pixels, 0 for one pixel.

    Example:
        >>> round(complexity(torch.ones(4, 4)), 4), round(float(torch.log(torch.tensor(16.0))), 4)
        (2.7726, 2.7726)
    """
    v = _scaled(a)
    p = v / v.abs().sum()
    return float(-(p * torch.log(p + 1e-12)).sum())


@register_metric
class Sparseness(AssessmentMetric):
    """Gini index of the map's magnitude (:func:`sparseness`)."""

    name = "sparseness"
    category = "complexity"
    higher_is_better = True
    columns = (
        Column("sparseness", higher_is_better=True,
               description="Gini index of |map| (Quantus Sparseness): 0 uniform, towards 1 concentrated on few "
               "pixels"),
    )  # fmt: skip

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        return {"sparseness": sparseness(attribution.magnitude[0])}


@register_metric
class Complexity(AssessmentMetric):
    """Entropy of the map's magnitude (:func:`complexity`)."""

    name = "complexity"
    category = "complexity"
    higher_is_better = False
    columns = (
        Column("complexity", higher_is_better=False, unit="nats",
               description="entropy of |map| / sum |map| over the pixels (Quantus Complexity): log N uniform, 0 one "
               "pixel"),
    )  # fmt: skip

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        return {"complexity": complexity(attribution.magnitude[0])}
