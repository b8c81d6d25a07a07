"""Model registry, timm-style: each model's config (weights, preprocessing, evaluation protocol, Grad-CAM layer) is
declared once, in the :class:`ModelConfig` given to ``@register_model`` on its family's builder.

Example (a family of two models, one builder)::

    @register_model(ModelConfig("tiny-nyu", Preprocessing((192, 256)), weights=WeightSource("tiny_nyu.pth")))
    @register_model(ModelConfig("tiny-kitti", Preprocessing((192, 636), unit="dm"), EvalDefaults(max_depth=80.0)))
    def build_tiny(config, weights=None, pretrained=True) -> DepthModel:
        net = TinyNet()
        return DepthModel(net, config.info(load_registered(net, config.weights, weights, pretrained)))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from depthscope.models.base import DepthModel, EvalDefaults, ModelInfo, Preprocessing
from depthscope.models.weights import WeightSource
from depthscope.registry import Registry


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a registered model that is data, declared once beside its builder.

    Example:
        >>> model_config("meter-xxs-kitti").eval.max_depth, model_config("meter-xxs-kitti").preprocessing.unit
        (80.0, 'dm')

    Attributes:
        name: registry name (``--model NAME``).
        preprocessing: input size, normalisation, output unit and kind, input crop.
        eval: the evaluation protocol of its checkpoint (depth caps in metres, crop, dataset layout).
        weights: where its published checkpoint comes from (None: architecture only, random weights).
        gradcam_layer: the module Grad-CAM reads by default.
        arch: the builder's architecture argument (e.g. METER's ``"xxs"``).
        description: one line for listings and ``--help``.
    """

    name: str
    preprocessing: Preprocessing
    eval: EvalDefaults = field(default_factory=EvalDefaults)
    weights: WeightSource | None = None
    gradcam_layer: str | None = None
    arch: Any = None
    description: str = ""

    def info(self, weights_path: str | os.PathLike | None) -> ModelInfo:
        """The :class:`ModelInfo` of a model built from this config with weights from ``weights_path``."""
        path = None if weights_path is None else str(weights_path)
        return ModelInfo(self.name, self.preprocessing, self.eval, path, self.gradcam_layer)


Builder = Callable[..., DepthModel]  # (config, weights=None, pretrained=True) -> DepthModel


@dataclass(frozen=True)
class RegisteredModel:
    """A registry entry: the config and the family builder it is passed to."""

    config: ModelConfig
    builder: Builder

    def __call__(self, weights: str | os.PathLike | None = None, pretrained: bool = True) -> DepthModel:
        return self.builder(self.config, weights=weights, pretrained=pretrained)


MODELS: Registry[RegisteredModel] = Registry("model")


def register_model(config: ModelConfig) -> Callable[[Builder], Builder]:
    """Decorator: register ``config`` with the decorated builder ``(config, weights=None, pretrained=True)``;
    stack one per model of a family (see the module docstring).

    Args:
        config: the model's :class:`ModelConfig`.

    Returns:
        A decorator that returns the builder unchanged.

    Example:
        >>> from depthscope.models import MODELS, Preprocessing, wrap
        >>> @register_model(ModelConfig("doc-toy", Preprocessing((64, 64), unit="cm")))
        ... def build_toy(config, weights=None, pretrained=True):
        ...     return wrap(torch.nn.Conv2d(3, 1, 1), config.preprocessing.input_size, unit="cm", name=config.name)
        >>> MODELS.get("doc-toy")().name
        'doc-toy'
        >>> MODELS.unregister("doc-toy")
    """

    def deco(builder: Builder) -> Builder:
        MODELS.register(config.name)(RegisteredModel(config, builder))
        return builder

    return deco


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names, sorted.

    Args:
        pattern: shell-style filter, e.g. ``"meter-*"``.
        pretrained: only models that declare a published checkpoint.

    Returns:
        The matching names.

    Example:
        >>> list_models("meter-*", pretrained=True)
        ['meter-xxs-kitti', 'meter-xxs-nyu']
    """
    names = MODELS.names(pattern)
    return [n for n in names if MODELS.get(n).config.weights is not None] if pretrained else names


def model_config(name: str) -> ModelConfig:
    """The declared config of registered model ``name`` (unknown names list the valid ones)."""
    return MODELS.get(name).config
