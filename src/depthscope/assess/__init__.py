"""Assessing attribution maps: perturbation curves, Attribution Fidelity, Infidelity, the Faithfulness Correlation
(each a registered metric, ``METRICS``), and resumable dataset runs configured by one ``AssessConfig``."""

from depthscope.assess import complexity as _complexity  # noqa: F401  (registers sparseness and complexity)
from depthscope.assess import faithfulness as _faithfulness  # noqa: F401  (registers ROAD, insertion_deletion, ...)
from depthscope.assess import metrics as _builtin  # noqa: F401  (registers the built-in metrics)
from depthscope.assess import randomisation as _randomisation  # noqa: F401  (registers MPRT, ...)
from depthscope.assess import robustness as _robustness  # noqa: F401  (registers the robustness family)
from depthscope.assess.config import AssessConfig
from depthscope.assess.fidelity import (
    DEFAULT_N_PERTURBATIONS,
    Draws,
    Estimate,
    af_depth_correlation,
    af_perturbation,
    faithfulness_correlation,
    faithfulness_score,
    infidelity,
    infidelity_score,
    noise_draws,
    subset_draws,
)
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, Curves, perturbation_curves, perturbed_views, rank_map
from depthscope.assess.plan import CostPlan
from depthscope.assess.registry import METRICS, AssessmentMetric, Column, ImageContext, register_metric
from depthscope.assess.run import assess, assess_image, display_summary, plan, summarize

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_N_PERTURBATIONS",
    "METRICS",
    "AssessConfig",
    "AssessmentMetric",
    "Column",
    "CostPlan",
    "Curves",
    "Draws",
    "Estimate",
    "ImageContext",
    "af_depth_correlation",
    "af_perturbation",
    "assess",
    "assess_image",
    "display_summary",
    "faithfulness_correlation",
    "faithfulness_score",
    "infidelity",
    "infidelity_score",
    "noise_draws",
    "perturbation_curves",
    "perturbed_views",
    "plan",
    "rank_map",
    "register_metric",
    "subset_draws",
    "summarize",
]
