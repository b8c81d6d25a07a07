"""The built-in probes: pure edits of image batches ``(B, 3, H, W)`` in [0, 1], registered in :data:`PROBES`."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from depthscope.ops.fills import fill_image
from depthscope.probe.registry import register_probe

FRAME_WIDTHS = (4, 8, 16)  # pixels
CONTROL_RING = 8  # the ring the controls keep: NYU's frame is 6-8 px wide


def ring_mask(h: int, w: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """``(H, W)`` bool: the outer ``width`` pixels of every side."""
    m = torch.ones(h, w, dtype=torch.bool, device=device)
    m[width : h - width, width : w - width] = False
    return m


def fill_ring(x: torch.Tensor, width: int, mode: str) -> torch.Tensor:
    """``x`` with its outer ``width``-px ring replaced: ``blur`` (a Gaussian blur of the image, sigma = width),
    ``mean`` (the image's mean colour), ``replicate`` (the nearest interior pixel, no blur), ``black`` or ``white``.

    Example:
        >>> x = torch.rand(1, 3, 32, 32)
        >>> y = fill_ring(x, 4, "black")
        >>> float(y[0, :, :4].abs().sum()), bool(torch.equal(y[..., 4:-4, 4:-4], x[..., 4:-4, 4:-4]))
        (0.0, True)
    """
    h, w = x.shape[-2:]
    if mode in ("blur", "mean", "black"):  # the fills perturbation curves and IG baselines use
        fill = fill_image(x, mode, blur_sigma=float(width))
    elif mode == "replicate":
        inner = x[..., width : h - width, width : w - width]
        fill = F.pad(inner, (width, width, width, width), mode="replicate")
    elif mode == "white":
        fill = torch.ones_like(x)
    else:
        raise ValueError(f"unknown ring fill {mode!r}")
    return torch.where(ring_mask(h, w, width, x.device), fill, x)


def edit_interior(x: torch.Tensor, edit, width: int = CONTROL_RING) -> torch.Tensor:  # noqa: ANN001
    """``x`` with ``edit`` applied to the part inside its outer ``width``-px ring only, the ring kept as it is (the
    edit never sees the frame, so no frame pixel is moved or copied into the content)."""
    h, w = x.shape[-2:]
    out = x.clone()
    out[..., width : h - width, width : w - width] = edit(x[..., width : h - width, width : w - width])
    return out


def shift_content(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The image moved by ``(dy, dx)`` pixels (down, right), the uncovered edge replicated from the nearest row or
    column."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (abs(dx), abs(dx), abs(dy), abs(dy)), mode="replicate")
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return padded[..., y0 : y0 + h, x0 : x0 + w]


def zoom_content(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The centre ``1 / factor`` of the image scaled up to the full size (bilinear): a zoom in by ``factor``."""
    h, w = x.shape[-2:]
    ch, cw = round(h / factor), round(w / factor)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return F.interpolate(x[..., y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode="bilinear", align_corners=False)


for _w in FRAME_WIDTHS:
    for _mode, _phrase in (
        ("blur", "blurring"), ("mean", "filling with the image's mean colour"),
        ("replicate", "replacing by its nearest interior pixels"), ("black", "turning black"),
        ("white", "turning white"),
    ):  # fmt: skip
        register_probe(f"frame{_w}_{_mode}", f"{_phrase} the outer {_w}-px frame", "frame")(
            functools.partial(fill_ring, width=_w, mode=_mode)
        )


@register_probe("shift_interior_6px", "shifting the content 6 px right and down (frame kept)", "control")
def shift_interior(x: torch.Tensor) -> torch.Tensor:
    return edit_interior(x, lambda c: shift_content(c, 6, 6))


@register_probe("zoom_interior_2.5pct", "zooming the content in by 2.5 % (frame kept)", "control")
def zoom_interior(x: torch.Tensor) -> torch.Tensor:
    return edit_interior(x, lambda c: zoom_content(c, 1.025))


@register_probe("content_up_5pct", "moving the content up by 5 % of the height (frame kept; horizon cue)", "cue")
def content_up(x: torch.Tensor) -> torch.Tensor:
    return edit_interior(x, lambda c: shift_content(c, -round(0.05 * x.shape[-2]), 0))


@register_probe("content_down_5pct", "moving the content down by 5 % of the height (frame kept; horizon cue)", "cue")
def content_down(x: torch.Tensor) -> torch.Tensor:
    return edit_interior(x, lambda c: shift_content(c, round(0.05 * x.shape[-2]), 0))


@register_probe("brighter_20pct", "brightening the image by 20 %", "photometric")
def brighter(x: torch.Tensor) -> torch.Tensor:
    return (x * 1.2).clamp(0, 1)


@register_probe("darker_20pct", "darkening the image by 20 %", "photometric")
def darker(x: torch.Tensor) -> torch.Tensor:
    return x * 0.8


@register_probe("contrast_low_20pct", "lowering the contrast by 20 % (around the image mean)", "photometric")
def contrast_low(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(-3, -2, -1), keepdim=True)
    return (mean + 0.8 * (x - mean)).clamp(0, 1)


@register_probe("hflip", "mirroring the image left to right (depth compared mirrored back)", "geometry",
                undo=lambda d: d.flip(-1))  # fmt: skip
def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)
