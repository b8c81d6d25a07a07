"""The result type of every attribution method and the method registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from depthscope.registry import Registry


@dataclass
class Attribution:
    """Attributions of ``T`` targets for one image.

    ``raw`` is ``(T, C, H, W)`` at the input image's resolution: ``C = 3`` (RGB channels) for pixel-gradient
    methods, ``C = 1`` for map-valued methods (Grad-CAM, Occlusion, Rollout, random). Units: target metres per
    unit of input intensity (gradients) or metres (IG, Occlusion); rollout and random are unitless.
    """

    method: str
    raw: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def signed(self) -> torch.Tensor:
        """``(T, H, W)``: sum over channels (sign kept)."""
        return self.raw.sum(1)

    @property
    def magnitude(self) -> torch.Tensor:
        """``(T, H, W)``: L1 norm over channels, the ranking used by perturbation curves."""
        return self.raw.abs().sum(1)


# A method: (target_model, image (1,3,H,W), **options) -> Attribution; target_model maps images to (B, T).
AttributionMethod = Callable[..., Attribution]
METHODS: Registry[AttributionMethod] = Registry("attribution method")
register_method = METHODS.register
GRADIENT_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad")
