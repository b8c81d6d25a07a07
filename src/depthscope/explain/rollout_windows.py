"""Attention Rollout through windowed attention: Swin blocks and PixelFormer's skip attention modules.

Relevance is a map ``(T, h, w)`` over one token grid; a target's relevance sums to 1 and every step below keeps
that sum (except what attention sends to zero-padding tokens, which carry no image content and are dropped).

From windows back to tokens (one block, :func:`window_relevance`). A block with window ``ws`` and shift ``s``
zero-pads its ``H x W`` grid to ``Hp x Wp``, rolls it by ``-s`` and cuts it into ``ws x ws`` windows of
``N = ws^2`` tokens (row-major); window ``k`` covers rolled rows ``ws*(k // (Wp/ws)) ...`` and columns
``ws*(k % (Wp/ws)) ...``. The rollout matrix ``A_hat = 0.5 A + 0.5 I`` of window ``k`` (heads fused) moves the
relevance ``r_k`` of its output tokens to its input tokens as ``r_k A_hat``; the windows are put back, the roll
undone and the padding cropped. Tokens that a shifted window wrapped around are masked from each other, so no
relevance crosses the image border.

Between stages (:func:`spread_relevance`, ``k = 2``). Patch merging makes token ``(i, j)`` of stage ``s+1`` from tokens
``(2i..2i+1, 2j..2j+1)`` of stage ``s``: each of the four receives a quarter of its relevance.

To pixels (:func:`spread_relevance`, ``k = 4``). Stage-0 token ``(i, j)`` is the pixel patch ``(4i..4i+3, 4j..4j+3)``:
each pixel receives 1/16 of it.

PixelFormer (:func:`pixelformer_rollout`). The depth at 1/4 resolution (upsampled x4) comes from the queries
``q0`` of ``sam1``; each pixel's target weight goes to its 4x4 cell. A SAM outputs
``norm(q + CrossAttn(q -> e) + MLP) + e + q``: of a token's relevance, half goes to the encoder tokens through
``A_hat`` of the cross-attention (the attention term and ``e``'s own skip) and half stays on the query token
(its two skips). Query relevance at one grid goes to the next coarser grid through the PixelShuffle (each coarse
token collects its 2x2 children); the initial queries ``q4`` (pyramid pooling of the deepest feature) are treated
as position-preserving onto that feature, and the bin-centre head, which pools globally, is left out. Encoder
relevance then flows from the deepest stage to the first: through each stage's blocks (last block first), out
of the stage's patch merging into the previous stage's output, where that stage's SAM relevance joins it, and
finally to pixels. MLPs, norms and convolutions are treated as position-preserving, as rollout always does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depthscope.explain.rollout import recording, register_rollout, rollout
from depthscope.models.pixelformer import PixelFormer
from depthscope.models.swin import SwinStage, WindowAttention, window_partition, window_reverse


def window_relevance(r: torch.Tensor, hat: torch.Tensor, attn: WindowAttention) -> torch.Tensor:
    """One windowed-attention step backwards: output-token relevance ``r`` ``(T, H, W)`` -> input-token relevance,
    with ``hat`` ``(nW, N, N)`` the per-window rollout matrices and ``attn.window_geometry`` the windows' layout."""
    g = attn.window_geometry
    (h, w), (hp, wp), ws, s = g.grid, g.padded, g.window, g.shift
    y = F.pad(r, (0, wp - w, 0, hp - h))
    if s:
        y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
    t = r.shape[0]
    win = window_partition(y.unsqueeze(-1), ws).view(t, -1, 1, ws * ws)  # (T, nW, 1, N)
    moved = (win @ hat).reshape(-1, ws * ws, 1)  # (T*nW, N, 1)
    y = window_reverse(moved, ws, hp, wp).squeeze(-1)
    if s:
        y = torch.roll(y, shifts=(s, s), dims=(1, 2))
    return y[:, :h, :w]


def layer_hat(attn: WindowAttention, head_fusion: str, discard_ratio: float) -> torch.Tensor:
    """The recorded attention of a batch-1 forward ``(nW, heads, N, N)`` -> rollout matrices ``(nW, N, N)``."""
    return rollout([attn.last_attention], head_fusion, discard_ratio)


def stage_relevance(r: torch.Tensor, stage: SwinStage, head_fusion: str, discard_ratio: float) -> torch.Tensor:
    """Relevance at a stage's output -> at its input, through its blocks from the last to the first."""
    for blk in reversed(stage.blocks):
        r = window_relevance(r, layer_hat(blk.attn, head_fusion, discard_ratio), blk.attn)
    return r


def spread_relevance(r: torch.Tensor, size: tuple[int, int], k: int) -> torch.Tensor:
    """Relevance of tokens that each stood for a ``k x k`` cell of a finer grid ``(T, ceil(H/k), ceil(W/k))`` ->
    that ``H x W`` grid, each cell getting ``1/k^2`` (patch merging: ``k = 2``; patch embedding: the patch size)."""
    up = r.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1) / k**2
    return up[:, : size[0], : size[1]]


@register_rollout(PixelFormer)
def pixelformer_rollout(
    model: torch.nn.Module, x: torch.Tensor, q: torch.Tensor, head_fusion: str, discard_ratio: float
) -> torch.Tensor:
    """Rollout through PixelFormer's SAMs and Swin encoder (see the module docstring). ``q``: ``(T,1,H,W)``."""
    net: PixelFormer = model.net
    with recording(model, x):
        grids = net.backbone.stage_grids
        r = F.avg_pool2d(q[:, 0], 4) * 16  # the depth head's 1/4 grid (= stage 0)
        r = r / r.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        enc: list[torch.Tensor] = []
        for i, sam in enumerate(reversed(net.sams())):  # sam1 (stage 0) first
            attn = sam.sam_block.attn
            enc.append(window_relevance(r, layer_hat(attn, head_fusion, discard_ratio), attn) / 2)
            r = r / 2
            if i < 3:
                r = F.avg_pool2d(r, 2) * 4  # undo PixelShuffle(2): a coarse token made these 2x2 queries
        enc[3] = enc[3] + r  # q4 = PQI(deepest feature), position-preserving
        r = enc[3]
        for s in range(3, -1, -1):
            r = stage_relevance(r, net.backbone.layers[s], head_fusion, discard_ratio)
            if s:
                r = enc[s - 1] + spread_relevance(r, grids[s - 1], 2)
        return spread_relevance(r, tuple(q.shape[-2:]), 4).unsqueeze(1)
