"""Attribution maps for dense depth: targets, methods (one registry), Attention Rollout, sanity checks."""

from depthscope.explain import gradients, maps, rollout, rollout_vit, rollout_windows  # noqa: F401  (registries)
from depthscope.explain.api import explain, target_model
from depthscope.explain.attribution import GRADIENT_METHODS, METHODS, Attribution, register_method
from depthscope.explain.sanity import cascading_randomization
from depthscope.explain.targets import TargetModel, parse_target

__all__ = [
    "GRADIENT_METHODS",
    "METHODS",
    "Attribution",
    "TargetModel",
    "cascading_randomization",
    "explain",
    "parse_target",
    "register_method",
    "target_model",
]
