"""METER's balanced loss (Papa et al.): depth L1, Sobel-gradient L1, surface-normal cosine and SSIM terms.

All terms compare a prediction with a target ``(B, 1, H, W)`` in the network's raw unit (centimetres for the
NYU METER), as in the authors' training: the weights ``(1, 1/0.5, 100, 100)`` and SSIM's value range 1000 are
theirs for centimetres. For distillation the target is the teacher's prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depthscope.ops.stats import ssim

SOBEL_X = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])


def sobel(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel derivatives ``(d/dx, d/dy)`` of ``(B, 1, H, W)`` with zero padding (same size out)."""
    k = torch.stack([SOBEL_X, SOBEL_X.T]).unsqueeze(1).to(depth)
    g = F.conv2d(depth, k, padding=1)
    return g[:, :1], g[:, 1:]


@dataclass(frozen=True)
class BalancedLoss:
    """``w_depth |p - t| + w_grad (|dx p - dx t| + |dy p - dy t|) + w_normal (1 - cos(n_p, n_t))
    + w_ssim (1 - SSIM(p, t))``, each term a mean over pixels; normals are ``(-dx, -dy, 1)``. Defaults: METER's."""

    w_depth: float = 1.0
    w_grad: float = 2.0
    w_normal: float = 100.0
    w_ssim: float = 100.0
    ssim_range: float = 1000.0

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The four weighted terms."""
        pdx, pdy = sobel(pred)
        tdx, tdy = sobel(target)
        ones = torch.ones_like(pred)
        n_p, n_t = torch.cat([-pdx, -pdy, ones], 1), torch.cat([-tdx, -tdy, ones], 1)
        return {
            "depth": self.w_depth * (pred - target).abs().mean(),
            "grad": self.w_grad * ((pdx - tdx).abs().mean() + (pdy - tdy).abs().mean()),
            "normal": self.w_normal * (1 - F.cosine_similarity(n_p, n_t, dim=1)).abs().mean(),
            "ssim": self.w_ssim * (1 - ssim(pred, target, self.ssim_range)),
        }

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.stack(list(self.terms(pred, target).values())).sum()
