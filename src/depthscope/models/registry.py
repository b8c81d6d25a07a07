"""Model registry: ``@register_model("name")`` on a factory ``(weights=None, pretrained=True) -> DepthModel``."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

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
    """Build a registered model in eval mode on ``device``.

    ``weights`` overrides the checkpoint lookup with an explicit file; ``pretrained=False`` gives random weights
    (enough for cost metrics).
    """
    model = MODELS.get(name)(weights=weights, pretrained=pretrained)
    return model.to(device).eval()
