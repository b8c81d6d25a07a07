"""Channel groups of METER and how to cut them (the structural half of pruning; ``optimize.prune`` chooses the
cut): a :class:`ChannelGroup` is a set of channels that exist together, the output channels of the layers that
make them (a convolution or linear layer, its batch norm, a depthwise convolution that passes them through) and
the input channels of the layer that consumes them. Removing channel ``c`` removes it from every member, so the
network stays consistent and no other layer changes. :func:`resize_like` replays a pruned checkpoint's widths
when it is loaded.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from depthscope.errors import InputError
from depthscope.models.meter import FeedForward, InvertedResidual, SeparableConv2d


@dataclass
class ChannelGroup:
    """``producers``: modules whose output channels (dim 0) are the group; ``consumers``: input channels (dim 1)."""

    name: str
    producers: list[nn.Module]
    consumers: list[nn.Module]

    @property
    def size(self) -> int:
        return self.producers[0].weight.shape[0]

    def importance(self) -> torch.Tensor:
        """Per-channel score: each member's per-channel weight L2 norms over their mean, summed over members."""
        score = torch.zeros(self.size)
        for m in self.producers:
            score += _normalised(m.weight.detach().reshape(self.size, -1).norm(dim=1))
        for m in self.consumers:
            score += _normalised(m.weight.detach().transpose(0, 1).reshape(self.size, -1).norm(dim=1))
        return score

    def keep(self, idx: torch.Tensor) -> None:
        """Keep only channels ``idx`` (sorted) in every member."""
        for m in self.producers:
            slice_out(m, idx)
        for m in self.consumers:
            slice_in(m, idx)


def _normalised(v: torch.Tensor) -> torch.Tensor:
    return v / v.mean().clamp_min(1e-12)


def set_tensor(m: nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace tensor ``name`` of ``m`` by ``value`` (a parameter stays a parameter, with its ``requires_grad``)."""
    old = getattr(m, name)
    if isinstance(old, nn.Parameter):
        setattr(m, name, nn.Parameter(value.contiguous(), requires_grad=old.requires_grad))
    else:
        setattr(m, name, value.contiguous())


def slice_out(m: nn.Module, idx: torch.Tensor) -> None:
    """Keep only output channels ``idx`` of a convolution, linear layer or batch norm (weights, bias, statistics
    and the width attributes)."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(m, name, None) is not None:
            set_tensor(m, name, getattr(m, name)[idx])
    n = len(idx)
    if isinstance(m, nn.Conv2d):
        if m.groups > 1:  # depthwise: one input channel per output channel
            m.in_channels = m.groups = n
        m.out_channels = n
    elif isinstance(m, nn.Linear):
        m.out_features = n
    elif isinstance(m, nn.BatchNorm2d):
        m.num_features = n


def slice_in(m: nn.Module, idx: torch.Tensor) -> None:
    """Keep only input channels ``idx`` of a (non-grouped) convolution or linear layer."""
    set_tensor(m, "weight", m.weight[:, idx])
    if isinstance(m, nn.Conv2d):
        m.in_channels = len(idx)
    elif isinstance(m, nn.Linear):
        m.in_features = len(idx)


def meter_groups(net: nn.Module) -> list[ChannelGroup]:
    """METER's internal-width channel groups (see the module docstring)."""
    groups = []
    for name, m in net.named_modules():
        if isinstance(m, InvertedResidual):
            c = m.conv
            groups.append(ChannelGroup(name, [c[0], c[1], c[3], c[4]], [c[6]]))
        elif isinstance(m, FeedForward):
            groups.append(ChannelGroup(name, [m.net[0]], [m.net[3]]))
        elif isinstance(m, SeparableConv2d):
            groups.append(ChannelGroup(name, [m.depthwise], [m.pointwise]))
    if not groups:
        raise InputError(f"no prunable channel groups found in {type(net).__name__} (METER-family models only)")
    return groups


def prune_fraction(net: nn.Module, keep: float, multiple: int = 8) -> nn.Module:
    """A copy of ``net`` keeping the ``keep`` fraction of each group's most important channels, rounded to a
    ``multiple`` (at least one multiple; a group no wider than that is kept whole)."""
    net = copy.deepcopy(net)
    for g in meter_groups(net):
        n = min(g.size, max(multiple, multiple * round(keep * g.size / multiple)))
        idx = torch.sort(torch.topk(g.importance(), n).indices).values
        g.keep(idx)
    return net


def resize_like(net: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Shrink ``net``'s channel groups in place to the widths found in a pruned checkpoint ``state`` (weights are
    left to :func:`load_state_dict`)."""
    names = {id(m): n for n, m in net.named_modules()}
    for g in meter_groups(net):
        key = f"{names[id(g.producers[0])]}.weight"
        if key in state and state[key].shape[0] != g.size:
            g.keep(torch.arange(state[key].shape[0]))
    return net


_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, *_TRANSPOSED)


def layer_groups(net: nn.Module) -> dict[str, int]:
    """``{name: groups}`` of every grouped convolution: what a checkpoint's shapes do not say (a depthwise
    convolution's weight is ``(C, 1, k, k)`` whatever its width), so a pruned recipe records it."""
    return {n: m.groups for n, m in net.named_modules() if isinstance(m, _CONVS) and m.groups > 1}


def resize_to_state(net: nn.Module, state: Mapping[str, torch.Tensor], groups: Mapping[str, int]) -> nn.Module:
    """Give ``net`` (in place) the tensor shapes of a checkpoint ``state`` of a structurally pruned copy of it,
    with the convolutions' ``groups`` as recorded; the layers' widths (``in_channels``, ``out_features``,
    ``num_features``, ``normalized_shape``...) follow. Weights are left to ``load_state_dict``; attention head counts
    are not in the shapes: :func:`~depthscope.models.heads.set_head_counts` restores them from the recipe first."""
    for name, m in net.named_modules():
        for kind in ("_parameters", "_buffers"):
            for key, t in list(getattr(m, kind).items()):
                full = f"{name}.{key}" if name else key
                if t is None or full not in state or tuple(state[full].shape) == tuple(t.shape):
                    continue
                new = torch.empty(state[full].shape, dtype=t.dtype, device=t.device)
                getattr(m, kind)[key] = nn.Parameter(new, t.requires_grad) if kind == "_parameters" else new
        w = getattr(m, "weight", None)
        if not isinstance(w, torch.Tensor):
            continue
        if isinstance(m, _CONVS):
            m.groups = int(groups.get(name, 1))
            transposed = isinstance(m, _TRANSPOSED)
            m.out_channels = w.shape[1] * m.groups if transposed else w.shape[0]
            m.in_channels = w.shape[0] if transposed else w.shape[1] * m.groups
        elif isinstance(m, nn.Linear):
            m.out_features, m.in_features = w.shape
        elif isinstance(m, nn.GroupNorm):
            m.num_channels = w.shape[0]
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            m.num_features = w.shape[0]
        elif isinstance(m, nn.LayerNorm):
            m.normalized_shape = tuple(w.shape)
    return net
