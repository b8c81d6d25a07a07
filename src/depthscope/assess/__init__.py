"""Assessing attribution maps: perturbation curves, Attribution Fidelity, Infidelity, dataset runs."""

from depthscope.assess.fidelity import (
    DEFAULT_N_PERTURBATIONS,
    Draws,
    Estimate,
    af_depth_correlation,
    af_perturbation,
    faithfulness_estimate,
    faithfulness_score,
    infidelity,
    infidelity_score,
    noise_draws,
    subset_draws,
)
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, Curves, perturbation_curves, rank_map
from depthscope.assess.run import assess, assess_image, summarize

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_N_PERTURBATIONS",
    "Draws",
    "Estimate",
    "faithfulness_score",
    "infidelity_score",
    "noise_draws",
    "subset_draws",
    "Curves",
    "af_depth_correlation",
    "af_perturbation",
    "assess",
    "assess_image",
    "faithfulness_estimate",
    "infidelity",
    "perturbation_curves",
    "rank_map",
    "summarize",
]
