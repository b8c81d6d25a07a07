"""Efficient token mixers for METER's MobileViT blocks: **Meta** (pooling, linear cost) and **Pyra**
(spatial-reduction attention), drop-in replacements for :class:`~depthscope.models.meter.Attention`.

Both see METER's token layout ``(B, groups, N, dim)`` (a group holds the ``h/p * w/p`` tokens at one offset inside
the ``p x p`` patches, see :func:`~depthscope.models.meter.patches_to_tokens`) and the feature grid ``(h, w)``.
Each exposes an **attention-equivalent matrix** in ``last_attention`` ``(B, groups, heads, N, N)`` (rows sum to 1)
when ``record`` is set, so Attention Rollout runs on them unchanged:

* Meta: ``out = W_out (P (x W_v))`` with ``P`` a fixed 3x3 average pooling over the token grid (MetaFormer's
  pooling mixer, with the value/output projections of the attention it replaces). ``P`` *is* the token mixing:
  the equivalent matrix is exact.
* Pyra: queries from every token, keys and values from tokens reduced ``r x r`` by a strided convolution (PVT's
  spatial-reduction attention, with a depthwise reduction). Its ``N x N/r^2`` attention is spread back over
  each reduced token's ``r x r`` members, uniformly: the equivalent matrix ``A R`` is exact for the average-initialised reduction on cells
  without padding, and an approximation once the reduction convolution has been trained.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from depthscope.errors import InputError
from depthscope.models.meter import Attention, MobileViTBlock, TokenMixer


def group_grid(x: torch.Tensor, grid: tuple[int, int] | None) -> tuple[int, int]:
    """The ``(rows, cols)`` of one token group of ``x`` ``(B, groups, N, dim)`` from the feature grid ``(h, w)``."""
    if grid is None:
        raise InputError("this token mixer needs the feature grid (h, w): call it through METER's Transformer")
    p = math.isqrt(x.shape[1])
    return grid[0] // p, grid[1] // p


def pooling_matrix(rows: int, cols: int, kernel: int = 3) -> torch.Tensor:
    """``(N, N)`` matrix of ``kernel x kernel`` average pooling (stride 1, padding excluded from the mean) on a
    ``rows x cols`` token grid: row ``n`` holds token ``n``'s pooling weights. Rows sum to 1."""
    n = rows * cols
    eye = torch.eye(n).reshape(n, 1, rows, cols)
    pooled = F.avg_pool2d(eye, kernel, 1, kernel // 2, count_include_pad=False)  # column n of P
    return pooled.reshape(n, n).T.contiguous()


class PoolMixer(TokenMixer):
    """Meta: ``W_out`` (3x3 average pooling of ``x W_v`` over the token grid). Linear in N; no softmax."""

    def __init__(self, dim: int, inner: int, kernel: int = 3) -> None:
        super().__init__(dim, inner)
        self.kernel = kernel
        self.to_v = nn.Linear(dim, inner, bias=False)

    @classmethod
    def from_attention(cls, attn: Attention, kernel: int = 3) -> PoolMixer:
        """Initialised from ``attn``: its value and output projections."""
        inner = attn.to_out[0].in_features
        mixer = cls(attn.to_qkv.in_features, inner, kernel)
        with torch.no_grad():
            mixer.to_v.weight.copy_(attn.to_qkv.weight[2 * inner :])
            mixer.to_out.load_state_dict(attn.to_out.state_dict())
        return mixer

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        self.token_grid = grid
        b, g, n, _ = x.shape
        rows, cols = group_grid(x, grid)
        v = self.to_v(x).transpose(-1, -2).reshape(b * g, -1, rows, cols)
        mixed = F.avg_pool2d(v, self.kernel, 1, self.kernel // 2, count_include_pad=False)
        if self.record:
            p = pooling_matrix(rows, cols, self.kernel).to(x)
            self.last_attention = p.expand(b, g, 1, n, n)
        return self.to_out(mixed.reshape(b, g, -1, n).transpose(-1, -2))


def reduction_matrix(rows: int, cols: int, r: int) -> torch.Tensor:
    """``(M, N)``: reduced token ``j`` (an ``r x r`` cell of the ``rows x cols`` grid, the grid padded up to a
    multiple of ``r``) spread uniformly over its real member tokens. Columns partition the N tokens."""
    rr, cc = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    cell = (rr // r) * math.ceil(cols / r) + cc // r  # (rows, cols) cell index of each token
    m = math.ceil(rows / r) * math.ceil(cols / r)
    onehot = F.one_hot(cell.flatten(), m).T.float()  # (M, N)
    return onehot / onehot.sum(dim=1, keepdim=True).clamp_min(1)


class SRAttention(TokenMixer):
    """Pyra: multi-head attention whose keys and values come from the token grid reduced ``sr x sr`` by a strided
    depthwise convolution (zero padding to a multiple of ``sr``): cost ``N * N / sr^2`` instead of ``N^2``, and
    only ``dim * sr^2`` new parameters (PVT's full reduction convolution would add ``dim^2 sr^2``, more than the
    whole attention of METER-XXS)."""

    def __init__(self, dim: int, heads: int, dim_head: int, sr_ratio: int = 2) -> None:
        if sr_ratio < 1:
            raise InputError(f"sr_ratio must be >= 1, got {sr_ratio}")
        inner = heads * dim_head
        super().__init__(dim, inner)
        self.heads, self.sr_ratio = heads, sr_ratio
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.reduce = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio, groups=dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)

    @classmethod
    def from_attention(cls, attn: Attention, sr_ratio: int = 2) -> SRAttention:
        """Initialised from ``attn`` (its q, k, v and output projections) with an averaging reduction, so that it
        starts as ``attn`` over ``sr x sr``-averaged keys and values."""
        dim, inner = attn.to_qkv.in_features, attn.to_out[0].in_features
        new = cls(dim, attn.heads, inner // attn.heads, sr_ratio)
        with torch.no_grad():
            new.to_q.weight.copy_(attn.to_qkv.weight[:inner])
            new.to_kv.weight.copy_(attn.to_qkv.weight[inner:])
            new.to_out.load_state_dict(attn.to_out.state_dict())
            new.reduce.weight.fill_(1.0 / sr_ratio**2)
        return new

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        self.token_grid = grid
        b, g, n, d = x.shape
        rows, cols = group_grid(x, grid)
        r = self.sr_ratio
        fmap = x.reshape(b * g, rows, cols, d).permute(0, 3, 1, 2)
        fmap = F.pad(fmap, (0, -cols % r, 0, -rows % r))
        reduced = self.reduce(fmap).flatten(2).transpose(1, 2).reshape(b, g, -1, d)  # (B, G, M, D)
        q = self.to_q(x).reshape(b, g, n, self.heads, -1).transpose(2, 3)
        k, v = (t.reshape(b, g, -1, self.heads, q.shape[-1]).transpose(2, 3) for t in self.to_kv(reduced).chunk(2, -1))
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)  # (B, G, h, N, M)
        if self.record:
            self.last_attention = (attn @ reduction_matrix(rows, cols, r).to(attn)).detach()
        return self.to_out((attn @ v).transpose(2, 3).flatten(3))


MIXERS = {"meta": PoolMixer, "pyra": SRAttention}


def replace_attention(net: nn.Module, kind: str, **options: int) -> list[str]:
    """Replace every METER :class:`Attention` in ``net`` by a ``kind`` (``meta``/``pyra``) mixer initialised from
    it, in place; return the names of the MobileViT blocks that now hold one (the blocks to distil: the mixer,
    and the block's convolutions and MLP around it, which can learn to compensate)."""
    if kind not in MIXERS:
        raise InputError(f"unknown token mixer {kind!r}; valid: {', '.join(MIXERS)}")
    replaced = []
    for name, module in net.named_modules():
        if isinstance(module, MobileViTBlock):
            for layer in module.transformer.layers:
                if isinstance(layer[0].fn, Attention):
                    layer[0].fn = MIXERS[kind].from_attention(layer[0].fn, **options)
            replaced.append(name)
    if not replaced:
        raise InputError(f"{type(net).__name__} has no METER transformer whose attention could be replaced")
    return replaced
