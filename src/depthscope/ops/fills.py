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
REPLACEMENTS = (*FILLS, "inpaint")  # fills of perturbed pixels: the static ones, and one that depends on the mask
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


INPAINT_SCALE = 8  # the inpainting fill is computed at 1/8 resolution: it is a heavy blur, and 64x cheaper there


def inpaint_fill(x: torch.Tensor, masks: torch.Tensor, sigma_fraction: float = BLUR_FRACTION) -> torch.Tensor:
    """An inpainting-style fill for each mask: a masked pixel becomes the Gaussian-weighted mean of the
    *unmasked* pixels around it (normalised convolution, sigma = ``sigma_fraction`` of the short side), so the
    perturbed region takes the colours of its surroundings instead of one foreign value.

    Args:
        x: the image ``(1, 3, H, W)``.
        masks: ``(K, 1, H, W)``, 1 where a pixel is replaced.
        sigma_fraction: the blur's sigma as a fraction of the short side.

    Returns:
        ``(K, 3, H, W)`` fills (only their masked pixels are used). Where no unmasked pixel is near (or none is
        left), the mean of the unmasked pixels, or of the image.

    Example:
        >>> x = torch.zeros(1, 3, 64, 64); x[..., :, 32:] = 1
        >>> m = torch.zeros(1, 1, 64, 64); m[..., 28:36, 28:36] = 1
        >>> fill = inpaint_fill(x, m)
        >>> 0.2 < fill[0, 0, 32, 30].item() < 0.8  # between the dark left and the bright right
        True
    """
    h, w = x.shape[-2:]
    keep = 1 - masks.to(x.dtype)
    small = lambda t: F.avg_pool2d(t, INPAINT_SCALE, ceil_mode=True)  # noqa: E731
    sigma = max(min(h, w) * sigma_fraction / INPAINT_SCALE, 0.5)
    num = gaussian_blur(small(x * keep), sigma)
    den = gaussian_blur(small(keep), sigma)
    left = keep.sum(dim=(-2, -1), keepdim=True)
    mean = torch.where(
        left > 0, (x * keep).sum(dim=(-2, -1), keepdim=True) / left.clamp_min(1), x.mean(dim=(-2, -1), keepdim=True)
    )
    fill = torch.where(den > 1e-3, num / den.clamp_min(1e-3), mean)
    return F.interpolate(fill, size=(h, w), mode="bilinear", align_corners=False)
