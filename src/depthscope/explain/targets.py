"""Targets: which scalar(s) of a dense depth map an attribution explains (SPEC §3).

Every target is a weighted mean of the predicted depth map: ``y_t = sum_hw W[t,h,w] * depth[h,w]`` with each
``W[t]`` non-negative and summing to 1. The whole-map mean, a box or mask mean, a near/far quantile region, one
pixel and each cell of a G×G grid are all such weights, so several targets of one image share one forward pass
(outputs ``(B, T)``), and Captum can explain column ``t`` of :class:`TargetModel` with ``target=t``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from depthscope.errors import InputError


def _normalise(w: torch.Tensor, what: str) -> torch.Tensor:
    s = w.sum(dim=(-2, -1), keepdim=True)
    if (s <= 0).any():
        raise InputError(f"target {what} selects no pixel of the image")
    return w / s


def mean_target(h: int, w: int) -> torch.Tensor:
    return torch.full((1, h, w), 1.0 / (h * w))


def box_target(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> torch.Tensor:
    """Mean depth of rows ``y0:y1``, columns ``x0:x1`` (end-exclusive, pixels of the input image)."""
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise InputError(f"target box {y0},{x0},{y1},{x1} is outside the {h}x{w} image or empty")
    wt = torch.zeros(1, h, w)
    wt[:, y0:y1, x0:x1] = 1
    return _normalise(wt, "box")


def pixel_target(h: int, w: int, y: int, x: int) -> torch.Tensor:
    if not (0 <= y < h and 0 <= x < w):
        raise InputError(f"target pixel ({y}, {x}) is outside the {h}x{w} image")
    return box_target(h, w, y, x, y + 1, x + 1)


def grid_target(h: int, w: int, g: int) -> torch.Tensor:
    """``g*g`` targets: the mean depth of each cell of a g×g grid, row-major."""
    if g < 1 or g > min(h, w):
        raise InputError(f"grid size {g} must be between 1 and {min(h, w)}")
    ys, xs = np.linspace(0, h, g + 1).round().astype(int), np.linspace(0, w, g + 1).round().astype(int)
    cells = [box_target(h, w, ys[i], xs[j], ys[i + 1], xs[j + 1]) for i in range(g) for j in range(g)]
    return torch.cat(cells)


def mask_target(mask: torch.Tensor | np.ndarray | str | Path, h: int, w: int) -> torch.Tensor:
    """Mean depth over a binary mask (array or image file; non-zero = inside) of the image's size."""
    where = "mask"
    if isinstance(mask, str | Path):
        from PIL import Image

        where = str(mask)
        try:
            mask = np.asarray(Image.open(mask))
        except OSError as e:
            raise InputError(f"{mask}: cannot read target mask ({e})") from None
    m = torch.as_tensor(np.asarray(mask)).squeeze()
    if m.dim() == 3:
        m = m.amax(dim=-1)
    if tuple(m.shape) != (h, w):
        raise InputError(f"{where}: target mask is {tuple(m.shape)} but the image is ({h}, {w})")
    return _normalise((m != 0).float().unsqueeze(0), where)


def quantile_target(depth: torch.Tensor, q: float, near: bool) -> torch.Tensor:
    """The nearest (or farthest) fraction ``q`` of pixels of a predicted depth map ``(H, W)``, fixed from it."""
    if not 0 < q <= 1:
        raise InputError(f"quantile {q} must be in (0, 1]")
    thr = torch.quantile(depth.flatten().float(), q if near else 1 - q)
    sel = depth <= thr if near else depth >= thr
    return _normalise(sel.float().unsqueeze(0), "quantile")


def parse_target(spec: str, h: int, w: int, depth: torch.Tensor | None = None) -> torch.Tensor:
    """Weights ``(T, H, W)`` from a CLI spec.

    ``mean`` | ``box:y0,x0,y1,x1`` | ``pixel:y,x`` | ``grid:G`` | ``near:Q`` | ``far:Q`` | ``mask:PATH``.
    ``near``/``far`` need the predicted ``depth`` map.
    """
    kind, _, arg = spec.partition(":")
    try:
        if kind == "mean":
            return mean_target(h, w)
        if kind == "box":
            return box_target(h, w, *map(int, arg.split(",")))
        if kind == "pixel":
            return pixel_target(h, w, *map(int, arg.split(",")))
        if kind == "grid":
            return grid_target(h, w, int(arg))
        if kind in ("near", "far"):
            if depth is None:
                raise InputError(f"target {spec!r} needs the predicted depth map")
            return quantile_target(depth, float(arg or 0.1), near=kind == "near")
        if kind == "mask":
            return mask_target(arg, h, w)
    except (TypeError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"cannot parse target {spec!r}: {e}") from None
    raise InputError(
        f"unknown target {spec!r}; valid: mean, box:y0,x0,y1,x1, pixel:y,x, grid:G, near:Q, far:Q, mask:PATH"
    )


class TargetModel(nn.Module):
    """``image (B,3,H,W) -> (B, T)`` target values in metres: what attribution methods differentiate."""

    def __init__(self, model: nn.Module, weights: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("weights", weights.float(), persistent=False)
        self._core: NetTargets | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        depth = self.model(x)[:, 0]
        if depth.shape[-2:] != self.weights.shape[-2:]:
            raise InputError(
                f"target weights {tuple(self.weights.shape[-2:])} do not match depth {tuple(depth.shape[-2:])}"
            )
        return torch.einsum("bhw,thw->bt", depth, self.weights)

    def factorised(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], NetTargets] | None:
        """``(pre, core)`` with ``self(x) == core(pre(x))``, ``pre`` affine, or None when the model's I/O is not
        linear (:attr:`DepthModel.linear_io`).

        Why: the targets are linear in the depth map and the model's pre/post-processing is affine, so
        ``grad_x y = J_pre^T grad_z core(z)`` with a constant ``J_pre``. Sums of gradients over many inputs
        (IG nodes, SmoothGrad samples) are formed at the network's resolution and mapped back to the image once;
        per sample, only the network runs forward and backward.
        """
        if not getattr(self.model, "linear_io", False):
            return None
        if self._core is None:
            self._core = NetTargets(self.model, self.weights)
        return self.model.prepare, self._core


class NetTargets(nn.Module):
    """``z (B,3,h,w) -> (B, T)``: the network on prepared inputs, with the targets pulled back through the
    model's linear :meth:`finish` (unit, upsampling, crop padding) to weights on the raw output grid."""

    def __init__(self, model: nn.Module, weights: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self._raw_weights: torch.Tensor | None = None

    def raw_weights(self, raw_shape: tuple[int, int]) -> torch.Tensor:
        """``(T, h', w')`` with ``<W_t, finish(r)> == <raw_weights_t, r>`` for every raw map ``r`` (adjoint of
        ``finish``, computed once by autograd)."""
        if self._raw_weights is None or tuple(self._raw_weights.shape[-2:]) != raw_shape:
            r = torch.zeros(1, 1, *raw_shape, device=self.weights.device, requires_grad=True)
            with torch.enable_grad():
                y = self.model.finish(r, tuple(self.weights.shape[-2:]))[0, 0]
                self._raw_weights = torch.stack(
                    [torch.autograd.grad(y, r, w, retain_graph=True)[0][0, 0] for w in self.weights]
                )
        return self._raw_weights

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        raw = self.model.net(z)
        return torch.einsum("bhw,thw->bt", raw[:, 0], self.raw_weights(tuple(raw.shape[-2:])))
