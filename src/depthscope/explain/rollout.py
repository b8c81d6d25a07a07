"""Attention Rollout (Abnar & Zuidema, 2020): the stack rule, and how it reaches pixels for each architecture.

Where tokens come from differs by architecture, so each network type registers a *rule*
(:func:`register_rollout`) that pulls a target's relevance back through its attention to the network input:
METER here; Swin/PixelFormer windows in ``rollout_windows``; ViT-style Hugging Face models in ``rollout_vit``.
The method maps the target weights from the image to the network-input grid, applies the rule, and maps the
result back to the image.

Within one attention stack, rollout multiplies the residual-augmented attention matrices
``A_hat = 0.5 A + 0.5 I`` (rows renormalised) from the first layer to the last: ``R = A_hat_L ... A_hat_1``;
row ``i`` of ``R`` says how much output token ``i`` draws from each input token. Heads are fused by
mean/max/min first; ``discard_ratio`` zeroes the weakest off-diagonal entries of each fused matrix (Gildenblat's
variant) before the residual is added.

How METER's tokens map back to pixels. A MobileViT block cuts its ``h x w`` feature map into 2x2 patches; the
pixels at offset ``(i, j)`` inside every patch form group ``g = 2i + j`` and attention runs among the
``h/2 * w/2`` tokens of one group only. Token ``n`` of group ``g`` is feature pixel
``(2 * (n // (w/2)) + i, 2 * (n % (w/2)) + j)`` (:func:`depthscope.models.meter.patches_to_tokens`).

How blocks are combined. The three blocks run at strides 8, 16 and 32 of METER's input. Relevance flows from
the target back towards the input, deepest block first: the target weights are area-pooled to the deepest
block's feature grid, cut into token groups, multiplied by that block's rollout matrix (``r = q R``), put back
on the feature grid, upsampled x2 to the previous block's grid, renormalised, and propagated through that block,
and so on; the map at the shallowest block is upsampled bilinearly to the input image (through the model's
resize and crop, the input window is mapped by plain bilinear resizing). The convolutions between blocks are
treated as position-preserving, which is rollout's usual approximation of everything that is not attention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution, register_method
from depthscope.models.base import source_type
from depthscope.models.meter import METER, patches_to_tokens, tokens_to_patches


def fuse_heads(attn: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """``(..., heads, N, N) -> (..., N, N)``."""
    if fusion == "mean":
        return attn.mean(-3)
    if fusion == "max":
        return attn.amax(-3)
    if fusion == "min":
        return attn.amin(-3)
    raise InputError(f"unknown head fusion {fusion!r}; valid: max, mean, min")


def rollout(attentions: list[torch.Tensor], fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """Roll out a stack of attention maps ``(..., heads, N, N)`` (first layer first) into ``(..., N, N)``."""
    if not 0 <= discard_ratio < 1:
        raise InputError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    result: torch.Tensor | None = None
    for attn in attentions:
        a = fuse_heads(attn, fusion)
        n = a.shape[-1]
        eye = torch.eye(n, dtype=a.dtype, device=a.device)
        if discard_ratio > 0:
            flat = a.masked_fill(eye.bool(), float("inf")).flatten(-2)
            k = int(discard_ratio * n * (n - 1))
            if k:
                idx = flat.topk(k, dim=-1, largest=False).indices
                a = a.flatten(-2).scatter(-1, idx, 0.0).view_as(a)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result
    if result is None:
        raise InputError("no attention maps to roll out")
    return result


@contextmanager
def recording(model: torch.nn.Module, x: torch.Tensor) -> Iterator[list[torch.nn.Module]]:
    """Run ``model`` on ``x`` once with every attention module recording; yield the modules, whose
    ``last_attention`` (and geometry attributes) hold that forward's probabilities until the block exits."""
    mods = model.attention_modules() if hasattr(model, "attention_modules") else []
    if not mods:
        raise InputError(f"{getattr(model, 'name', type(model).__name__)} has no attention modules to roll out")
    for m in mods:
        m.record = True
    try:
        with torch.no_grad():
            model(x)
        yield mods
    finally:
        for m in mods:
            m.record, m.last_attention = False, None


def record_attention(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each attention module's probabilities for ``model(x)``, in forward order."""
    with recording(model, x) as mods:
        return [m.last_attention for m in mods]


RolloutRule = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, str, float], torch.Tensor]
ROLLOUT_RULES: dict[type, RolloutRule] = {}


def register_rollout(net_type: type) -> Callable[[RolloutRule], RolloutRule]:
    """Register how relevance flows back through the attention of networks of ``net_type``. A rule takes
    ``(model, x, q, head_fusion, discard_ratio)`` where ``q`` ``(T, 1, h, w)`` is each target's weight on the
    network-input grid, and returns the relevance of each network-input pixel ``(T, 1, h, w)``."""

    def deco(fn: RolloutRule) -> RolloutRule:
        ROLLOUT_RULES[net_type] = fn
        return fn

    return deco


def rollout_rule(net: torch.nn.Module) -> RolloutRule:
    """The rule for ``net``'s type (for a traced/quantised copy, the type it was made from)."""
    for cls in source_type(net).__mro__:
        if cls in ROLLOUT_RULES:
            return ROLLOUT_RULES[cls]
    known = ", ".join(sorted(c.__name__ for c in ROLLOUT_RULES))
    raise InputError(f"attention_rollout does not know how {type(net).__name__}'s tokens map to pixels; known: {known}")


@register_rollout(METER)
def meter_rollout(
    model: torch.nn.Module, x: torch.Tensor, q: torch.Tensor, head_fusion: str, discard_ratio: float, patch: int = 2
) -> torch.Tensor:
    """Cascaded rollout over METER's MobileViT blocks, deepest first (see the module docstring)."""
    attns = record_attention(model, x)  # each (1, groups, heads, N, N)
    grids = [m.token_grid for m in model.attention_modules()]  # feature (h, w) of each block, set at forward time
    relevance = q
    for attn, (h, w) in zip(reversed(attns), reversed(grids), strict=True):
        r = F.adaptive_avg_pool2d(relevance, (h, w))
        r = r / r.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        hat = rollout([attn[0]], head_fusion, discard_ratio)  # (groups, N, N)
        tokens = patches_to_tokens(r, patch)  # (T, groups, N, 1)
        relevance = tokens_to_patches(hat.transpose(-1, -2) @ tokens, patch, h, w)  # (T, 1, h, w)
    return F.interpolate(relevance, size=q.shape[-2:], mode="bilinear", align_corners=False)


@register_method("attention_rollout", needs_grad=False)
def attention_rollout(
    fmodel: torch.nn.Module, x: torch.Tensor, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> Attribution:
    """Attention Rollout for each target: the target weights are taken to the network-input grid, pulled back
    through the network's attention by its registered rule, and mapped to the image (zero outside a crop)."""
    model, weights = fmodel.model, fmodel.weights  # TargetModel
    q = to_network_frame(model, weights.unsqueeze(1))
    relevance = rollout_rule(model.net)(model, x, q, head_fusion, discard_ratio)
    out = to_image_frame(model, relevance, x.shape[-2:])
    n_attn = len(model.attention_modules())
    return Attribution(
        "attention_rollout", out, {"head_fusion": head_fusion, "discard_ratio": discard_ratio, "blocks": n_attn}
    )


def to_network_frame(model: torch.nn.Module, m: torch.Tensor) -> torch.Tensor:
    """A map on the input image's grid ``(T, 1, H, W)`` -> the network-input grid (the model's crop, then an area
    resize: relevance is averaged, not sampled)."""
    size = tuple(model.preprocessing.input_size)
    m = model.crop(m)
    return m if tuple(m.shape[-2:]) == size else F.interpolate(m, size=size, mode="area")


def to_image_frame(model: torch.nn.Module, m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A map on the network-input grid -> the input image's grid (undoing the resize, zero outside a crop)."""
    m = F.interpolate(m, size=model.crop_size(tuple(size)), mode="bilinear", align_corners=False)
    return model.uncrop(m, tuple(size))
