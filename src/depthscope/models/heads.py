"""Attention heads and how to cut them (the structural half of head pruning; ``optimize.prune`` chooses how many).

A :class:`HeadLayout` says, for one attention module, which projections produce per-head rows (queries, keys and
values, each projection holding one or more of them in chunks), which consume per-head columns (the output
projection), which tensors hold one entry per head (Swin's relative-position bias table: one column per head) and
which attribute holds the head count. Removing head ``h`` removes its rows, columns and entries from every member;
the module's input and output widths do not change, so nothing outside it changes, and the attention of every
kept head is computed exactly as before.

A dependency graph does not show this grouping (the head count lives in a reshape's arguments), which is why
torch-pruning asks for a per-model ``num_heads`` map; here each attention class's layout is one registered
function (:data:`HEAD_LAYOUTS`), and a network's layouts are found by asking each registered function of each
module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from depthscope.models.channels import set_tensor, slice_in, slice_out
from depthscope.models.meter import Attention
from depthscope.models.mixers import SRAttention
from depthscope.models.pixelformer import WindowCrossAttention
from depthscope.models.swin import WindowSelfAttention
from depthscope.registry import Registry


@dataclass
class HeadLayout:
    """The per-head members of one attention module.

    Attributes:
        module: the attention module.
        attribute: the name of its attribute holding the head count (read by its forward).
        producers: ``(linear, chunks)``: a projection whose output rows are ``chunks`` blocks (q, k, v in that
            order) of ``heads * head_dim`` rows each, head-major inside a block.
        consumers: projections whose input columns are ``heads * head_dim``, head-major.
        tables: ``(parameter name on module, dim)``: tensors with one entry per head along ``dim``.
        widths: names of attributes holding ``heads * head_dim`` (timm's ``attn_dim``), kept equal to it.
    """

    module: nn.Module
    attribute: str
    producers: list[tuple[nn.Linear, int]]
    consumers: list[nn.Linear]
    tables: list[tuple[str, int]] = field(default_factory=list)
    widths: list[str] = field(default_factory=list)

    @property
    def heads(self) -> int:
        return int(getattr(self.module, self.attribute))

    @property
    def head_dim(self) -> int:
        return self.consumers[0].in_features // self.heads

    def _columns(self, idx: torch.Tensor) -> torch.Tensor:
        return (idx[:, None] * self.head_dim + torch.arange(self.head_dim)).flatten()

    def _rows(self, chunks: int, idx: torch.Tensor) -> torch.Tensor:
        inner = self.heads * self.head_dim
        return torch.cat([c * inner + self._columns(idx) for c in range(chunks)])

    def importance(self) -> torch.Tensor:
        """Per-head score ``(heads,)``: as channels are ranked (:meth:`ChannelGroup.importance`), each member's
        per-row (producers) or per-column (consumers) weight L2 norms over their mean, summed over the head's
        rows and columns in every member. Tables are biases, not weights: they do not vote."""
        h, d = self.heads, self.head_dim
        score = torch.zeros(h)
        for layer, chunks in self.producers:
            norms = layer.weight.detach().float().norm(dim=1)
            score += (norms / norms.mean().clamp_min(1e-12)).view(chunks, h, d).sum(dim=(0, 2)).cpu()
        for layer in self.consumers:
            norms = layer.weight.detach().float().norm(dim=0)
            score += (norms / norms.mean().clamp_min(1e-12)).view(h, d).sum(dim=1).cpu()
        return score

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only heads ``idx`` (sorted) in every member; the head count attribute follows."""
        idx, d = idx.to(torch.long).cpu(), self.head_dim
        for layer, chunks in self.producers:
            slice_out(layer, self._rows(chunks, idx).to(layer.weight.device))
        cols = self._columns(idx)
        for layer in self.consumers:
            slice_in(layer, cols.to(layer.weight.device))
        for name, dim in self.tables:
            t = getattr(self.module, name)
            set_tensor(self.module, name, t.index_select(dim, idx.to(t.device)))
        self.set_heads(len(idx), d)

    def set_heads(self, n: int, head_dim: int | None = None) -> None:
        """Set the head count attribute (and :attr:`widths`) to ``n`` heads of ``head_dim`` (default: read from
        the unpruned consumer), leaving the tensors as they are."""
        d = self.head_dim if head_dim is None else head_dim
        setattr(self.module, self.attribute, n)
        for name in self.widths:
            setattr(self.module, name, n * d)


LayoutFinder = Callable[[nn.Module], HeadLayout | None]

#: name -> a function returning the :class:`HeadLayout` of a module it knows (``None`` for any other module).
HEAD_LAYOUTS: Registry[LayoutFinder] = Registry("head layout")


@HEAD_LAYOUTS.register("meter")
def _meter(m: nn.Module) -> HeadLayout | None:
    """METER's (MobileViT's) multi-head self-attention: one ``to_qkv`` projection, ``to_out[0]``."""
    if isinstance(m, Attention):
        return HeadLayout(m, "heads", [(m.to_qkv, 3)], [m.to_out[0]])
    return None


@HEAD_LAYOUTS.register("pyra")
def _pyra(m: nn.Module) -> HeadLayout | None:
    """Pyra's spatial-reduction attention: queries ``to_q``, keys and values ``to_kv`` (the reduction is
    depthwise on the token width, which heads do not touch)."""
    if isinstance(m, SRAttention):
        return HeadLayout(m, "heads", [(m.to_q, 1), (m.to_kv, 2)], [m.to_out[0]])
    return None


@HEAD_LAYOUTS.register("swin")
def _swin(m: nn.Module) -> HeadLayout | None:
    """Swin's window self-attention: ``qkv``, ``proj``, and the relative-position bias table (one column a head)."""
    if isinstance(m, WindowSelfAttention):
        return HeadLayout(m, "heads", [(m.qkv, 3)], [m.proj], [("relative_position_bias_table", 1)])
    return None


@HEAD_LAYOUTS.register("pixelformer-sam")
def _sam(m: nn.Module) -> HeadLayout | None:
    """PixelFormer's window cross-attention: queries ``q`` from the decoder, keys and values ``kv`` from the
    encoder, ``proj``, the bias table."""
    if isinstance(m, WindowCrossAttention):
        return HeadLayout(m, "heads", [(m.q, 1), (m.kv, 2)], [m.proj], [("relative_position_bias_table", 1)])
    return None


@HEAD_LAYOUTS.register("q_k_v_o_proj")
def _qkvo(m: nn.Module) -> HeadLayout | None:
    """The Hugging Face ``transformers`` 5 convention (Dinov2, the Depth Anything backbone, and most others):
    ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``, ``num_attention_heads``, reshaped by ``head_dim``. Grouped-query
    attention (fewer key/value heads) is left alone."""
    linears = [getattr(m, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
    heads, dim = getattr(m, "num_attention_heads", None), getattr(m, "head_dim", None)
    if not all(isinstance(x, nn.Linear) for x in linears) or not isinstance(heads, int) or not isinstance(dim, int):
        return None
    q, k, v, o = linears
    if not q.out_features == k.out_features == v.out_features == o.in_features == heads * dim:
        return None
    return HeadLayout(m, "num_attention_heads", [(q, 1), (k, 1), (v, 1)], [o])


@HEAD_LAYOUTS.register("timm")
def _timm(m: nn.Module) -> HeadLayout | None:
    """timm's ``Attention`` (ViT, DeiT, EVA...: a fused ``qkv``, ``proj``, ``num_heads``, ``head_dim``, and
    ``attn_dim``, by which timm 1.0's forward reshapes the heads' outputs). Left alone: versions without
    ``attn_dim`` (their forward reshapes by the input width, which breaks once heads go) and a scale norm over
    ``attn_dim`` (a ``LayerNorm`` of its own across heads)."""
    qkv, proj, norm = getattr(m, "qkv", None), getattr(m, "proj", None), getattr(m, "norm", nn.Identity())
    heads, dim, width = (getattr(m, a, None) for a in ("num_heads", "head_dim", "attn_dim"))
    if not (isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear) and isinstance(norm, nn.Identity)):
        return None
    if not all(isinstance(v, int) for v in (heads, dim, width)) or not width == heads * dim:  # type: ignore[operator]
        return None
    if qkv.out_features != 3 * width or proj.in_features != width:
        return None
    return HeadLayout(m, "num_heads", [(qkv, 3)], [proj], widths=["attn_dim"])


def head_layouts(net: nn.Module) -> dict[str, HeadLayout]:
    """``{module name: layout}`` of every attention module of ``net`` some registered layout function knows.

    Example:
        >>> from depthscope.models.meter import Attention
        >>> layout = head_layouts(nn.Sequential(Attention(32, heads=4, dim_head=8)))["0"]
        >>> layout.keep(torch.tensor([0, 2, 3])); layout.module.heads, layout.module.to_qkv.out_features
        (3, 72)
    """
    found = {}
    for name, m in net.named_modules():
        for key in HEAD_LAYOUTS:
            layout = HEAD_LAYOUTS.get(key)(m)
            if layout is not None:
                found[name] = layout
                break
    return found


def head_counts(net: nn.Module) -> dict[str, int]:
    """``{module name: heads}`` of every known attention module: what a pruned checkpoint's shapes do not say
    (METER's ``to_qkv`` rows are ``3 * heads * head_dim``), so a pruned recipe records it."""
    return {name: layout.heads for name, layout in head_layouts(net).items()}


def set_head_counts(net: nn.Module, counts: Mapping[str, int]) -> nn.Module:
    """Set (in place) the head count attributes recorded by :func:`head_counts`, before the tensors are given the
    checkpoint's shapes (a layout recognises an attention module by its projections' unpruned shapes). A name that
    is no attention module of ``net`` raises ``KeyError``."""
    layouts = head_layouts(net)
    for name, n in counts.items():
        layout = layouts[name]
        if not 1 <= int(n) <= layout.heads:
            raise ValueError(f"{name}: {n} heads, the architecture has {layout.heads}")
        layout.set_heads(int(n))
    return net
