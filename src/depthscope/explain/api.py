"""``explain``: attribution maps of one image for one or several methods and targets."""

from __future__ import annotations

import os
from typing import Any

import torch

from depthscope.data.io import read_image
from depthscope.errors import InputError
from depthscope.explain.attribution import METHODS, Attribution
from depthscope.explain.targets import TargetModel, parse_target
from depthscope.models import DepthModel, load_model

GRADIENT_FREE = ("attention_rollout", "occlusion", "random")  # methods that need no backward pass


def as_batch(image: torch.Tensor | str | os.PathLike, device: torch.device | str = "cpu") -> torch.Tensor:
    """An image path or tensor ``(3,H,W)``/``(1,3,H,W)`` in [0, 1] -> ``(1,3,H,W)`` on ``device``."""
    x = read_image(image) if isinstance(image, str | os.PathLike) else image
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise InputError(f"image must be (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    return x.to(device=device, dtype=torch.float32)


def target_model(model: DepthModel, x: torch.Tensor, target: str | torch.Tensor = "mean") -> TargetModel:
    """The ``(B, T)`` target model for ``target`` (a spec such as ``grid:4``, or weights ``(T, H, W)``)."""
    h, w = x.shape[-2:]
    if isinstance(target, str):
        depth = None
        if target.split(":")[0] in ("near", "far"):
            with torch.no_grad():
                depth = model(x)[0, 0]
        weights = parse_target(target, h, w, depth)
    else:
        weights = target if target.dim() == 3 else target.unsqueeze(0)
        if tuple(weights.shape[-2:]) != (h, w):
            raise InputError(f"target weights {tuple(weights.shape[-2:])} do not match the image ({h}, {w})")
    return TargetModel(model, weights.to(x.device))


def explain(
    model: DepthModel | str,
    image: torch.Tensor | str | os.PathLike,
    methods: str | list[str] = "saliency",
    target: str | torch.Tensor = "mean",
    options: dict[str, dict[str, Any]] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Attribution]:
    """Attributions of ``image`` under ``model`` for each method in ``methods`` (comma-separated or list).

    ``options`` maps a method name to its keyword arguments, e.g. ``{"integrated_gradients": {"n_steps": 32}}``.
    All targets of the image are explained together.
    """
    if isinstance(model, str):
        model = load_model(model, device=device or "cpu")
    model.eval()
    dev = next(model.parameters()).device
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    fns = {name: METHODS.get(name) for name in names}  # unknown names fail before any work
    needs_grad = sorted(set(names) - set(GRADIENT_FREE))
    if needs_grad and not model.differentiable:
        raise InputError(
            f"{model.name} runs int8 kernels, which have no gradients: {', '.join(needs_grad)} cannot run on it; "
            f"use {', '.join(GRADIENT_FREE)}, or explain the float model it came from"
        )
    x = as_batch(image, dev)
    fmodel = target_model(model, x, target)
    options = options or {}
    unknown = set(options) - set(names)
    if unknown:
        raise InputError(f"options given for methods not requested: {', '.join(sorted(unknown))}")
    return {name: _detach(fn(fmodel, x, **options.get(name, {}))) for name, fn in fns.items()}


def _detach(a: Attribution) -> Attribution:
    a.raw = a.raw.detach()
    return a
