"""Depth models behind one interface: images in ``[0,1]`` in, metric depth in metres out."""

from depthscope.models import meter, pixelformer  # noqa: F401  (registers the models)
from depthscope.models.base import (
    DepthModel,
    EvalDefaults,
    InputCrop,
    ModelInfo,
    Preprocessing,
    warn_if_untrained,
    warn_untrained,
    wrap,
)
from depthscope.models.loading import load_model
from depthscope.models.registry import MODELS, ModelConfig, list_models, model_config, register_model
from depthscope.models.weights import ENV_WEIGHTS, WeightSource, read_state_dict, resolve_weights

__all__ = [
    "ENV_WEIGHTS",
    "MODELS",
    "DepthModel",
    "EvalDefaults",
    "InputCrop",
    "ModelConfig",
    "ModelInfo",
    "Preprocessing",
    "WeightSource",
    "list_models",
    "load_model",
    "model_config",
    "read_state_dict",
    "register_model",
    "resolve_weights",
    "warn_if_untrained",
    "warn_untrained",
    "wrap",
]
