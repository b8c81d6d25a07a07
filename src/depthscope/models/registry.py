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

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from depthscope.errors import CheckpointError, InputError, UnknownNameError
from depthscope.models.base import DepthModel, EvalDefaults, ModelInfo, Preprocessing
from depthscope.models.weights import WeightSource
from depthscope.registry import Registry


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a registered model that is data, declared once beside its builder.

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
    stack one per model of a family. Returns the builder unchanged."""

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


def load_model(
    name: str,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
) -> DepthModel:
    """Build a registered model, a Hugging Face model ``"hf:<directory or hub name>"``, a Python entry point
    ``"package.module:function"`` or an optimised checkpoint ``FILE.safetensors`` written by ``depthscope
    optimize``, in eval mode on ``device``.

    ``weights`` overrides the checkpoint lookup with an explicit file; ``pretrained=False`` gives random weights
    (enough for cost metrics). An entry point's function returns a :class:`DepthModel` (e.g. from
    :func:`depthscope.wrap`) and may accept ``weights`` and ``pretrained``. ``device="meta"`` builds the model
    without allocating weights (shapes only: parameter and MAC counts), and loads none.
    """
    if str(device) == "meta" and name.endswith(".safetensors"):
        device = "cpu"  # an optimised checkpoint is small, and its structure comes from its tensors
    if str(device) == "meta":
        with torch.device("meta"):
            return _build(name, None, False).to(device).eval()
    return _build(name, weights, pretrained).to(device).eval()


def _build(name: str, weights: str | os.PathLike | None, pretrained: bool) -> DepthModel:
    if name.startswith("hf:"):
        from depthscope.models.hf import load_hf

        if weights is not None:
            raise InputError("a Hugging Face model takes its weights from its directory: --model hf:DIR")
        return load_hf(name.removeprefix("hf:"), pretrained=pretrained)
    if name.endswith(".safetensors"):
        from depthscope.models.optimized import load_optimized

        if weights is not None:
            raise InputError(f"{name} is an optimised checkpoint holding its own weights; drop --weights")
        return load_optimized(name, lambda base: _registered_base(name, base))
    if ":" in name and name not in MODELS:
        return _call_entry_point(name, weights=weights, pretrained=pretrained)
    return MODELS.get(name)(weights=weights, pretrained=pretrained)


def _registered_base(path: str, base: str) -> DepthModel:
    """The base model an optimised checkpoint names, built without weights: registered names only. A file's
    metadata is data; entry points (``module:function``) run only when the user types them."""
    if not isinstance(base, str) or base not in MODELS:
        raise CheckpointError(
            f"{path}: its recipe names base model {base!r}, which is not a registered model; a checkpoint may only "
            f"name one of: {', '.join(MODELS.names())}"
        )
    return MODELS.get(base)(pretrained=False)


def _call_entry_point(spec: str, **kwargs: object) -> DepthModel:
    """Import ``module:function`` (the current directory is searched too, as ``python -m`` does) and call it."""
    module_name, _, attr = spec.partition(":")
    try:
        if os.getcwd() not in sys.path and importlib.util.find_spec(module_name.split(".")[0]) is None:
            sys.path.append(os.getcwd())
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownNameError(f"model entry point {spec!r}: cannot import {module_name!r} ({e})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UnknownNameError(f"model entry point {spec!r}: {module_name} has no function {attr!r}")
    accepted = inspect.signature(factory).parameters
    model = factory(**{k: v for k, v in kwargs.items() if k in accepted})
    if not isinstance(model, DepthModel):
        raise InputError(
            f"model entry point {spec!r} returned {type(model).__name__}, not a DepthModel; return "
            "depthscope.wrap(module, input_size=(H, W), mean=..., std=..., unit=...) so images and metres are defined"
        )
    return model
