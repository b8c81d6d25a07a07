"""Image fills: what an Integrated Gradients baseline is, and what perturbed pixels are replaced by.

One function serves both (they are the same images): ``black`` (zeros), ``mean`` (the per-channel image mean),
``blur`` (a Gaussian blur of the image, sigma 1/16 of its short side unless given) and ``noise`` (uniform in
[0, 1], from a seeded stream of its own so that equal seeds never mean shared numbers).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.seeding import generator

FILLS = ("black", "blur", "mean", "noise")
REPLACEMENTS = (
    *FILLS,
    "inpaint",
    "linear",
)  # fills of perturbed pixels: the static ones, and two that depend on the mask
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


# ROAD's neighbour weights (Rong et al. 2022): a removed pixel is the weighted mean of its 8 neighbours
LINEAR_WEIGHTS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
                  ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))  # fmt: skip
ROAD_NOISE = 0.01  # std of the noise ROAD adds to the imputed pixels, in units of the [0, 1] pixel range


def linear_imputation(x: torch.Tensor, masks: torch.Tensor, noise: float = ROAD_NOISE, seed: int = 0) -> torch.Tensor:
    """ROAD's noisy linear imputation (Rong et al., ICML 2022; Quantus ``noisy_linear_imputation``): the masked
    pixels of each mask take the values that make every one of them the weighted mean of its 8 neighbours
    (:data:`LINEAR_WEIGHTS`; the unmasked neighbours are known, the masked ones solved for together, one sparse
    linear system per mask), plus Gaussian noise of std ``noise``. The fill carries no information about the
    removed pixels beyond what their surroundings say, so a model cannot read the shape of the removed set.

    Args:
        x: the image ``(1, C, H, W)``.
        masks: ``(K, 1, H, W)``, non-zero where a pixel is replaced.
        noise: std of the added noise (0: the plain linear imputation).
        seed: the noise's seed (stream ``road_noise``).

    Returns:
        ``(K, C, H, W)`` fills (only their masked pixels are used; elsewhere ``x``).

    Example:
        >>> x = torch.zeros(1, 1, 5, 5); x[..., :, 3:] = 1
        >>> m = torch.zeros(1, 1, 5, 5); m[..., 2, 2] = 1
        >>> round(linear_imputation(x, m, noise=0)[0, 0, 2, 2].item(), 4)  # 3 of its 8 neighbours are bright
        0.3333
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    h, w = x.shape[-2:]
    img = x[0].detach().double().cpu().flatten(1).numpy()  # (C, H*W)
    g = generator(seed, "road_noise")
    out = x.detach().double().cpu().repeat(len(masks), 1, 1, 1)
    for k, mask in enumerate(masks.detach().cpu()):
        idx = np.flatnonzero(mask[0].numpy().ravel() != 0)
        if idx.size == 0:
            continue
        var = np.full(h * w, -1)
        var[idx] = np.arange(idx.size)
        ys, xs = np.divmod(idx, w)
        rows, cols, vals = [], [], []
        rhs, total = np.zeros((idx.size, img.shape[0])), np.zeros(idx.size)
        for (dy, dx), weight in LINEAR_WEIGHTS:
            yy, xx = ys + dy, xs + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            total[inside] += weight  # neighbours outside the image do not count
            at, nb = np.flatnonzero(inside), yy[inside] * w + xx[inside]
            unknown = var[nb] >= 0
            rows.append(at[unknown])
            cols.append(var[nb[unknown]])
            vals.append(np.full(int(unknown.sum()), weight))
            rhs[at[~unknown]] -= weight * img[:, nb[~unknown]].T
        n = np.arange(idx.size)
        a = sp.csc_matrix((np.concatenate([*vals, -total]), (np.concatenate([*rows, n]), np.concatenate([*cols, n]))),
                          shape=(idx.size, idx.size))  # fmt: skip
        solved = np.asarray(spsolve(a, rhs)).reshape(idx.size, -1)
        values = torch.from_numpy(solved.T)  # (C, n)
        if noise > 0:
            values = values + noise * torch.randn(values.shape, generator=g, dtype=values.dtype)
        out[k].flatten(1)[:, idx] = values
    return out.to(x)
