"""Image fills: what an Integrated Gradients baseline is, and what perturbed pixels are replaced by.

One function serves both (they are the same images): ``black`` (zeros), ``mean`` (the per-channel image mean),
``blur`` (a Gaussian blur of the image, sigma 1/16 of its short side unless given) and ``noise`` (uniform in
[0, 1], from a seeded stream of its own so that equal seeds never mean shared numbers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.seeding import generator

FILLS = ("black", "blur", "mean", "noise")
BLUR_FRACTION = 1 / 16  # default blur sigma as a fraction of the image's short side


def fill_image(
    x: torch.Tensor,
    kind: str = "mean",
    seed: int = 0,
    stream: str = "fill_noise",
    blur_sigma: float | None = None,
    what: str = "fill",
) -> torch.Tensor:
    """An image like ``x`` ``(B, 3, H, W)`` in [0, 1] made of the fill ``kind``.

    Args:
        x: the image (or batch).
        kind: one of :data:`FILLS`.
        seed: seed of the ``noise`` fill, drawn from ``stream`` (:func:`depthscope.seeding.generator`).
        stream: the random stream's name, e.g. ``"baseline_noise"`` or ``"replacement_noise"``.
        blur_sigma: the ``blur`` fill's Gaussian sigma in pixels (default: short side / 16).
        what: the caller's word for the fill in error messages (``baseline``, ``replacement``).

    Returns:
        A tensor shaped like ``x`` (the ``mean`` fill is an expanded view: clone it before writing into it).

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> fill_image(x, "mean")[0, :, 0, 0].allclose(x.mean(dim=(-2, -1))[0])
        True
    """
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    if kind == "blur":
        return gaussian_blur(x, sigma=blur_sigma or min(x.shape[-2:]) * BLUR_FRACTION)
    if kind == "noise":
        return torch.rand(x.shape, generator=generator(seed, stream)).to(x)
    raise InputError(f"unknown {what} {kind!r}; valid {what}s: {', '.join(FILLS)}")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflect padding (radius 3 sigma, at most the image)."""
    r = max(1, min(int(3 * sigma), x.shape[-1] - 1, x.shape[-2] - 1))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) / sigma) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[1], 1, 1, 1)
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k, groups=x.shape[1])
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.transpose(-1, -2), groups=x.shape[1])
