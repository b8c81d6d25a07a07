"""Structured channel pruning: channels are *removed* (smaller tensors), so parameters, MACs and latency drop.

A :class:`ChannelGroup` is a set of channels that exist together: the output channels of the layers that make
them (a convolution or linear layer, its batch norm, a depthwise convolution that passes them through) and the
input channels of the layer that consumes them. Removing channel ``c`` removes it from every member, so the network
stays consistent and no other layer changes. For METER the groups are the internal widths, whose removal
touches no skip connection or concatenation:

* each MobileNetV2 block's expanded width (1x1 expand, BN, 3x3 depthwise, BN, 1x1 project);
* each transformer MLP's hidden width;
* each "separable" convolution's inner width (its full 3x3 convolution's outputs, the 1x1's inputs).

Channels are ranked inside a group by magnitude (the L2 norms of their weight slices, each member's norms
divided by their mean, summed), and every group keeps the same fraction, found by bisection so that the whole
network's parameter count drops by the requested ratio. Kept widths are rounded to a multiple of 8: on this CPU
(oneDNN, 2 threads) odd widths made the 30 %-pruned METER-XXS 7 % *slower* than the original (best of 75
forwards), with depthwise convolutions of 21 channels slower than of 32; rounded, it was 3 % slower and the
50 %-pruned one 11 % faster (measured when this was written; see the README).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from depthscope.efficiency.params import count_params
from depthscope.errors import InputError
from depthscope.models.base import require_modules
from depthscope.models.channels import meter_groups, prune_fraction


def fit_to_ratio(
    cut: Callable[[float], nn.Module],
    total: int,
    ratio: float,
    bounds: tuple[float, float],
    increasing: bool,
    steps: int,
    tol: float,
    what: str,
) -> tuple[nn.Module, float]:
    """The network ``cut(f)`` whose parameter count is closest to ``(1 - ratio) * total``, ``f`` found by
    bisection within ``bounds`` (params grow with ``f`` when ``increasing``), and that ``f``. Each ``f`` is cut
    once; more than 5 % of ``total`` off the target is an error naming ``what`` was pruned."""
    target = (1 - ratio) * total
    lo, hi = bounds
    made: dict[float, nn.Module] = {}

    def params(f: float) -> int:
        if f not in made:
            made[f] = cut(f)
        return count_params(made[f])

    for _ in range(steps):
        mid = (lo + hi) / 2
        if (params(mid) > target) == increasing:
            hi = mid
        else:
            lo = mid
        made = {f: m for f, m in made.items() if f in (lo, hi)}  # only the bounds are still candidates
        if hi - lo < tol:
            break
    best = min((lo, hi), key=lambda f: abs(params(f) - target))
    pruned = made[best]
    if abs(count_params(pruned) - target) / total > 0.05:
        raise InputError(
            f"pruning ratio {ratio}: {what} cannot remove that share of the parameters (reached "
            f"{1 - count_params(pruned) / total:.3f})"
        )
    return pruned, best


def prune_channels(net: nn.Module, ratio: float, multiple: int = 8) -> tuple[nn.Module, float]:
    """A copy of ``net`` whose parameter count is ``(1 - ratio)`` of the original (as close as widths rounded to
    ``multiple`` allow; more than 5 % off is an error), and the per-group keep fraction used."""
    if not 0 < ratio < 1:
        raise InputError(f"pruning ratio must be in (0, 1), got {ratio}")
    return fit_to_ratio(lambda f: prune_fraction(net, f, multiple), count_params(net), ratio, (0.0, 1.0),
                        increasing=True, steps=30, tol=1e-4,
                        what=f"the prunable channels ({len(meter_groups(net))} groups)")  # fmt: skip


def _attention_modules(net: nn.Module) -> list[nn.Module]:
    """Every attention module (a class named ``*Attention*`` or holding ``num_heads``): the widths of its
    projections are tied to head counts a graph does not show, so they are kept whole."""
    return [m for m in net.modules() if "attention" in type(m).__name__.lower() or hasattr(m, "num_heads")]


def _output_layers(net: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The convolutions and linear layers whose outputs reach the network's output through no other such layer:
    their channels are the output's (METER: the last convolution; PixelFormer: the per-pixel bin logits and the
    bin-width MLP, joined by a softmax, a cumulative sum and an expectation), so they stay whole. Found by walking
    the autograd graph of one forward back from the output, stopping at each such layer."""
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    made: dict[object, nn.Module] = {}  # grad_fn of a layer's output -> the layer

    def record(m: nn.Module, _inputs: tuple, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            made[out.grad_fn] = m

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, kinds)]
    try:
        with torch.enable_grad():
            out = net(example.detach().clone().requires_grad_(True))
    finally:
        for h in hooks:
            h.remove()
    tensors = [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]
    todo = [t.grad_fn for t in tensors if t.grad_fn is not None]
    seen, found = set(todo), []
    while todo:
        fn = todo.pop()
        if fn in made:
            found.append(made[fn])
            continue
        for nxt, _ in fn.next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return list({id(m): m for m in found}.values())


def prune_graph(
    net: nn.Module, example: torch.Tensor, ratio: float, multiple: int = 8, keep: Sequence[str] = ()
) -> tuple[nn.Module, float]:
    """A copy of any network with ``ratio`` of its parameters removed by structured pruning along its dependency
    graph (torch-pruning's DepGraph): every group of coupled channels (a convolution's outputs with its batch
    norm, the depthwise convolution and the next layer's inputs; residual streams; transformer MLP widths) loses
    its lowest-magnitude channels (L2 norm, rounded to ``multiple``), one channel fraction for all groups, found by
    bisection. Kept whole: the output layers (those whose outputs reach the output through no other convolution or
    linear layer), attention projections, and the modules named in ``keep``.

    Args:
        net: the network (eval mode); not changed.
        example: a network input ``(1, 3, H, W)``, to trace the graph.
        ratio: the share of parameters to remove, in (0, 1).
        multiple: kept widths are multiples of it (odd widths are slow in oneDNN).
        keep: module names never pruned.

    Returns:
        ``(pruned copy, channel fraction removed per group)``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1),
        ...                     nn.ReLU(), nn.Conv2d(64, 1, 3, padding=1))
        >>> pruned, _ = prune_graph(net, torch.zeros(1, 3, 32, 32), 0.5, multiple=1)
        >>> round(count_params(pruned) / count_params(net), 1), tuple(pruned(torch.zeros(1, 3, 32, 32)).shape)
        (0.5, (1, 1, 32, 32))
    """
    if not 0 < ratio < 1:
        raise InputError(f"pruning ratio must be in (0, 1), got {ratio}")
    try:
        import torch_pruning as tp
    except ImportError:
        raise InputError("pruning any network needs torch-pruning: pip install 'depthscope[prune]'") from None
    require_modules(net, keep, "--prune-keep")
    modules = dict(net.named_modules())
    names = {id(m): n for n, m in modules.items()}
    attention = _attention_modules(net)
    linears = [s for m in attention for s in m.modules() if isinstance(s, nn.Linear)]
    fixed = {names[id(m)] for m in [*_output_layers(net, example), *linears]} | set(keep)
    # their own tensors (Swin's relative-position bias tables, last dimension = heads), declared so torch-pruning
    # does not warn of them at each cut; with the projections whole their heads are never pruned
    tables = [f"{names[id(m)]}.{n}".lstrip(".") for m in attention for n, _ in m.named_parameters(recurse=False)]

    def cut(fraction: float) -> nn.Module:
        copy_ = copy.deepcopy(net).eval()
        own = dict(copy_.named_modules())
        ignored = [own[n] for n in fixed]
        params = dict(copy_.named_parameters())
        try:
            tp.pruner.MetaPruner(copy_, example, importance=tp.importance.MagnitudeImportance(p=2),
                                 pruning_ratio=fraction, ignored_layers=ignored, round_to=multiple,
                                 unwrapped_parameters=[(params[t], -1) for t in tables]).step()  # fmt: skip
        except Exception as e:  # torch-pruning raises what its tracer meets; name it, with what to do
            raise InputError(
                f"the dependency graph of {type(net).__name__} cannot be pruned ({type(e).__name__}: {e}); keep the "
                "module that fails whole with --prune-keep NAME"
            ) from None
        return copy_

    return fit_to_ratio(cut, count_params(net), ratio, (0.0, 0.95), increasing=False, steps=12, tol=5e-3,
                        what=f"the prunable channels of {type(net).__name__}")  # fmt: skip
