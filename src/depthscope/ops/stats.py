"""Statistics of maps shared by the explanation checks, the assessment scores and the training losses:
Pearson and Spearman correlation, the descending order of a map's values, and SSIM (one implementation)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two tensors' values (flattened, in float64); 0 when either is constant.

    Example:
        >>> pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 7.0])) > 0.98
        True
    """
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return (a @ b).item() / den if den > 0 else 0.0


def descending_order(values: torch.Tensor) -> torch.Tensor:
    """``argsort(values, descending=True, stable=True)`` for a 1-D float tensor of up to 2**32 entries, 3-7x
    faster on CPU: each value's float32 bits, mapped to an int32 of the same order, and its position form one
    unique int64 key, so a plain (unstable) sort of the keys is the stable descending order."""
    bits = (values.float() + 0.0).view(torch.int32)  # + 0.0: -0.0 becomes 0.0, equal as floats
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()  # negative floats: reverse their bit order
    pos = torch.arange(values.numel(), device=values.device)
    key = ((-1 - ordered) << 32) | pos  # -1 - v reverses the order (descending); the position breaks ties
    if key.device.type == "cpu":  # NumPy's int64 sort is about 2x faster than torch's on CPU
        return torch.from_numpy(np.sort(key.numpy())) & 0xFFFFFFFF
    return torch.sort(key).values & 0xFFFFFFFF


def descending_ranks(values: torch.Tensor) -> torch.Tensor:
    """Rank of each entry of ``values`` (any shape) by descending value, 0 = largest; ties by position."""
    order = descending_order(values.flatten())
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return rank.view(values.shape)


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (ties broken by position).

    Example:
        >>> a = torch.arange(16.0)
        >>> spearman(a, a**3), spearman(a, -a)
        (1.0, -1.0)
    """
    return pearson(descending_ranks(a), descending_ranks(b))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised ``size x size`` Gaussian window."""
    t = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, value_range: float, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of single-channel maps ``(B, 1, H, W)`` with a Gaussian window over valid positions (no padding),
    constants ``(0.01 L)^2`` and ``(0.03 L)^2`` for value range ``L`` (Wang et al. 2004; equals scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``). Differentiable.

    Example:
        >>> a = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> round(ssim(a, a, value_range=1.0).item(), 6)
        1.0
    """
    size = min(window, a.shape[-2], a.shape[-1])
    g = gaussian_window(size, sigma)[size // 2].to(a)
    g = g / g.sum()  # the window is the outer product g g^T: two 1-D passes, 5x faster than one 2-D one

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return (num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean()


def map_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of two 2-D maps after min-max normalising each to [0, 1] (attribution maps have arbitrary units)."""

    def norm(t: torch.Tensor) -> torch.Tensor:  # float32: values in [0, 1], double would only be slower
        t = t.float()
        return ((t - t.min()) / (t.max() - t.min()).clamp_min(1e-12))[None, None]

    return ssim(norm(a), norm(b), value_range=1.0).item()


def top_fraction_iou(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.1) -> float:
    """Intersection over union of the ``fraction`` largest entries of ``a`` and of ``b`` (same shape): how far two
    maps agree on *where* the most important pixels are (1: the same pixels, about ``fraction / (2 - fraction)``
    for unrelated maps). Exactly ``round(fraction * n)`` entries each, ties broken by position.

    Example:
        >>> a = torch.arange(10.0)
        >>> top_fraction_iou(a, a, 0.2), top_fraction_iou(a, -a, 0.2), top_fraction_iou(a, a.roll(1), 0.2)
        (1.0, 0.0, 0.3333333333333333)
    """
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, round(fraction * a.numel()))
    top_a = descending_ranks(a) < k
    top_b = descending_ranks(b) < k
    inter = int((top_a & top_b).sum())
    return inter / (2 * k - inter)
