"""Swin Transformer backbone (Liu et al., 2021) as used by dense-prediction models (PixelFormer, NeWCRFs).

Our implementation, state_dict-compatible with the official segmentation/depth backbone (``patch_embed``,
``layers.i.blocks.j.attn.qkv``..., ``layers.i.downsample``, ``norm{i}`` on each returned stage). Inference only:
stochastic depth and dropout are identities at eval time and are left out.

Geometry, which Attention Rollout relies on (``depthscope.explain.rollout_windows``):

* the patch embedding turns each 4x4 pixel patch into one token (the image is zero-padded to a multiple of 4);
* a block pads its ``H x W`` token grid to ``Hp x Wp`` (multiples of the window ``ws``, zeros at the bottom and
  right), rolls it by ``-shift`` in both axes (``shift`` is 0 or ``ws // 2``, alternating), and runs attention
  inside each ``ws x ws`` window; tokens that the roll wrapped around are masked from each other;
* patch merging concatenates each 2x2 group of tokens into one token of the next stage.

Every attention module keeps its softmax probabilities (``(windows * B, heads, ws*ws, ws*ws)``) in
``last_attention`` when ``record`` is set, plus the geometry of that call in ``window_geometry``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class WindowGeometry:
    """Where the windows of one attention call lie: token grid ``(H, W)``, padded ``(Hp, Wp)``, window, shift."""

    grid: tuple[int, int]
    padded: tuple[int, int]
    window: int
    shift: int


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``(B, H, W, C) -> (B * H/ws * W/ws, ws*ws, C)``: windows in row-major order, tokens row-major inside."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, ws*ws, C) -> (B, H, W, C)``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """``(ws*ws, ws*ws)`` index into the ``(2ws-1)^2`` relative-position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


def shifted_window_mask(hp: int, wp: int, ws: int, shift: int, device: torch.device | None = None) -> torch.Tensor:
    """``(nW, N, N)`` additive mask (0 or -100) keeping rolled-around regions of a shifted window apart."""
    region = torch.zeros(1, hp, wp, 1, device=device)
    bounds = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, hs in enumerate(bounds):
        for j, wsl in enumerate(bounds):
            region[:, hs, wsl, :] = 3 * i + j
    ids = window_partition(region, ws).squeeze(-1)  # (nW, N)
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Softmax attention inside windows with a learned relative-position bias (the part self- and
    cross-attention share). Subclasses project the queries, keys and values."""

    def __init__(self, dim: int, heads: int, ws: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.window = ws
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.record = False
        self.last_attention: torch.Tensor | None = None
        self.window_geometry: WindowGeometry | None = None

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``q, k, v``: ``(B*nW, N, C)`` -> ``(B*nW, N, C)``; ``mask``: ``(nW, N, N)`` or None."""
        bw, n, c = q.shape
        q, k, v = (t.reshape(bw, n, self.heads, c // self.heads).transpose(1, 2) for t in (q, k, v))
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(bw // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)).view(
                -1, self.heads, n, n
            )
        attn = attn.softmax(dim=-1)
        if self.record:
            self.last_attention = attn.detach()
        return (attn @ v).transpose(1, 2).reshape(bw, n, c)


class WindowSelfAttention(WindowAttention):
    def __init__(self, dim: int, heads: int, ws: int) -> None:
        super().__init__(dim, heads, ws)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(self.attend(q, k, v, mask))


def pad_to_windows(x: torch.Tensor, ws: int) -> torch.Tensor:
    """Zero-pad ``(B, H, W, C)`` at the bottom/right to multiples of ``ws``."""
    h, w = x.shape[1:3]
    return F.pad(x, (0, 0, 0, (-w) % ws, 0, (-h) % ws))


class SwinBlock(nn.Module):
    """(Shifted-)window self-attention and an MLP, each with a pre-norm residual."""

    def __init__(self, dim: int, heads: int, ws: int, shift: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window, self.shift = ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowSelfAttention(dim, heads, ws)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor | None) -> torch.Tensor:
        b, length, c = x.shape
        ws, s = self.window, self.shift
        y = pad_to_windows(self.norm1(x).view(b, h, w, c), ws)
        hp, wp = y.shape[1:3]
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        self.attn.window_geometry = WindowGeometry((h, w), (hp, wp), ws, s)
        y = window_reverse(self.attn(window_partition(y, ws), mask if s else None), ws, hp, wp)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + y[:, :h, :w].reshape(b, length, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens -> one token of twice the width (odd grids are zero-padded first)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """``depth`` blocks alternating plain and shifted windows, then (optionally) patch merging."""

    def __init__(self, dim: int, depth: int, heads: int, ws: int, downsample: bool, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window = ws
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, ws, 0 if i % 2 == 0 else ws // 2, mlp_ratio) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens ``(B, h*w, C)`` -> (stage output on the same grid, merged tokens on the ``ceil(h/2) x ceil(w/2)``
        grid or None)."""
        ws = self.window
        mask = shifted_window_mask(-(-h // ws) * ws, -(-w // ws) * ws, ws, ws // 2, x.device)
        for blk in self.blocks:
            x = blk(x, h, w, mask)
        return x, None if self.downsample is None else self.downsample(x, h, w)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` pixel patches -> tokens (image zero-padded to a multiple of ``patch``)."""

    def __init__(self, dim: int, patch: int = 4) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = self.proj(F.pad(x, (0, (-w) % self.patch, 0, (-h) % self.patch)))
        return self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).view_as(x)


class SwinTransformer(nn.Module):
    """Image ``(B,3,H,W)`` -> stage features ``[(B, C*2^i, H/4/2^i, W/4/2^i)]`` (each after its ``norm{i}``)."""

    def __init__(
        self,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        heads: tuple[int, ...] = (3, 6, 12, 24),
        window: int = 7,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(embed_dim)
        n = len(depths)
        self.num_features = [embed_dim * 2**i for i in range(n)]
        self.layers = nn.ModuleList(
            SwinStage(self.num_features[i], depths[i], heads[i], window, i < n - 1, mlp_ratio) for i in range(n)
        )
        for i, c in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(c))
        self.stage_grids: list[tuple[int, int]] = []  # token grid of each stage, set at forward time

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        tokens = x.flatten(2).transpose(1, 2)
        outs, grids = [], []
        for i, stage in enumerate(self.layers):
            out, tokens = stage(tokens, h, w)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, h, w, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            grids.append((h, w))
            h, w = (h + 1) // 2, (w + 1) // 2
        self.stage_grids = grids
        return outs
