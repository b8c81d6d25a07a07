"""Model registry: ``@register_model("name")`` on a factory ``(weights=None, pretrained=True) -> DepthModel``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable

import torch

from depthscope.errors import InputError, UnknownNameError
from depthscope.models.base import DepthModel
from depthscope.registry import Registry

ModelFactory = Callable[..., DepthModel]
MODELS: Registry[ModelFactory] = Registry("model")
register_model = MODELS.register


def list_models() -> list[str]:
    return MODELS.names()


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
        from depthscope.optimize.checkpoint import load_optimized

        if weights is not None:
            raise InputError(f"{name} is an optimised checkpoint holding its own weights; drop --weights")
        return load_optimized(name)
    if ":" in name and name not in MODELS:
        return _call_entry_point(name, weights=weights, pretrained=pretrained)
    return MODELS.get(name)(weights=weights, pretrained=pretrained)


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
