"""Attribution maps for dense depth: targets, methods (one registry of specs), Attention Rollout, sanity checks."""

from depthscope.explain import gradients, maps, rollout, rollout_vit, rollout_windows  # noqa: F401  (registries)
from depthscope.explain.api import explain, target_model
from depthscope.explain.attribution import METHODS, Attribution, MethodSpec, methods_without_gradients, register_method
from depthscope.explain.sanity import cascading_randomization
from depthscope.explain.save import sanity_rows, save_explanation
from depthscope.explain.targets import TargetModel, parse_target

__all__ = [
    "METHODS",
    "Attribution",
    "MethodSpec",
    "TargetModel",
    "cascading_randomization",
    "explain",
    "methods_without_gradients",
    "parse_target",
    "register_method",
    "sanity_rows",
    "save_explanation",
    "target_model",
]
