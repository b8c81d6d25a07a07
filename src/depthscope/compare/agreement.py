"""How far two models agree on one image: their depths and their attribution maps (pure functions on tensors).

Depth agreement is measured with model A as the reference (AbsRel's denominator), over the pixels both models
predict (KITTI models predict 0 outside their crop). Map agreement compares the magnitude maps over the same
pixels: Spearman rank correlation, SSIM of the min-max normalised maps and the IoU of their top-10 % pixels; all
three are invariant to the maps' scale, so a method's units (metres per intensity, metres) do not matter.
"""

from __future__ import annotations

import torch

from depthscope.assess.registry import Column
from depthscope.ops.stats import map_ssim, spearman, top_fraction_iou

TOP_FRACTION = 0.1  # the share of pixels whose overlap ``top10_iou`` measures

DEPTH_COLUMNS = (
    Column("depth_rmse", False, unit="m", description="RMSE between the two models' predicted depths"),
    Column("depth_abs_rel", False, description="mean |depth_B - depth_A| / depth_A over the pixels both predict"),
)
MAP_COLUMNS = (
    Column("spearman", True, description="Spearman rank correlation of the two magnitude maps"),
    Column("ssim", True, description="SSIM of the two magnitude maps, each min-max normalised to [0, 1]"),
    Column("top10_iou", True, description="IoU of the two maps' 10 % largest-magnitude pixels"),
)


def depth_agreement(depth_a: torch.Tensor, depth_b: torch.Tensor) -> dict[str, float]:
    """RMSE (metres) and AbsRel (unitless, A as reference) between two predicted depth maps ``(H, W)``.

    Args:
        depth_a: the reference model's depth in metres.
        depth_b: the other model's depth in metres, same shape.

    Returns:
        ``{"depth_rmse": ..., "depth_abs_rel": ...}`` over the pixels where both are positive.

    Example:
        >>> a = torch.full((2, 2), 2.0)
        >>> depth_agreement(a, a + 1.0)
        {'depth_rmse': 1.0, 'depth_abs_rel': 0.5}
    """
    if depth_a.shape != depth_b.shape:
        raise ValueError(f"depth maps of different shapes {tuple(depth_a.shape)} and {tuple(depth_b.shape)}")
    valid = (depth_a > 0) & (depth_b > 0)
    a, b = depth_a[valid].double(), depth_b[valid].double()
    if a.numel() == 0:
        raise ValueError("the two depth maps share no pixel with a positive depth")
    return {
        "depth_rmse": float(((b - a) ** 2).mean().sqrt()),
        "depth_abs_rel": float(((b - a).abs() / a).mean()),
    }


def map_agreement(
    magnitude_a: torch.Tensor, magnitude_b: torch.Tensor, mask: torch.Tensor | None = None
) -> dict[str, float]:
    """Spearman, SSIM and top-10 % IoU of two attribution magnitude maps ``(H, W)`` of the same image.

    Args:
        magnitude_a: model A's map.
        magnitude_b: model B's map, same shape.
        mask: the pixels to compare (default: all). A KITTI model's maps are 0 outside its input crop for both
            models; counting those pixels would make any two maps agree there, so ``compare`` passes the pixels
            both models predict. SSIM is taken over the mask's bounding box, the others over the mask.

    Example:
        >>> m = torch.rand(32, 32, generator=torch.Generator().manual_seed(0))
        >>> {k: round(v, 6) for k, v in map_agreement(m, 3 * m).items()}
        {'spearman': 1.0, 'ssim': 1.0, 'top10_iou': 1.0}
    """
    a, b = magnitude_a.detach().float(), magnitude_b.detach().float()
    if mask is not None and not bool(mask.all()):
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        return {
            "spearman": spearman(a[mask], b[mask]),
            "ssim": map_ssim(a[box], b[box]),
            "top10_iou": top_fraction_iou(a[mask], b[mask], TOP_FRACTION),
        }
    return {
        "spearman": spearman(a, b),
        "ssim": map_ssim(a, b),
        "top10_iou": top_fraction_iou(a, b, TOP_FRACTION),
    }
