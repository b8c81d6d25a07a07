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
from typing import Any

import torch
from torch import nn

from depthscope.efficiency.params import count_params
from depthscope.errors import InputError
from depthscope.models.base import require_modules
from depthscope.models.channels import meter_groups, prune_fraction
from depthscope.models.heads import head_layouts
from depthscope.models.hooks import forward_hooks


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
    projections are tied to head counts a graph does not show, so DepGraph keeps them whole; whole heads of the
    ones a :data:`~depthscope.models.heads.HEAD_LAYOUTS` function knows are pruned by :func:`prune_heads`."""
    return [m for m in net.modules() if "attention" in type(m).__name__.lower() or hasattr(m, "num_heads")]


def prune_heads(net: nn.Module, fraction: float, keep: Sequence[str] = ()) -> dict[str, int]:
    """Remove (in place) ``fraction`` of the heads of every attention module of ``net`` whose layout is known
    (:func:`~depthscope.models.heads.head_layouts`), the least important first (:meth:`HeadLayout.importance`),
    rounded to the nearest head count, at least one kept; a module named in ``keep``, or one of whose
    projections is, keeps all its heads. Returns ``{module name: heads kept}``.

    Example:
        >>> from depthscope.models.meter import Attention
        >>> net = nn.Sequential(Attention(32, heads=4, dim_head=8))
        >>> prune_heads(net, 0.5), net[0].to_qkv.out_features
        ({'0': 2}, 48)
    """
    kept = {}
    names = {id(m): n for n, m in net.named_modules()}
    for name, layout in head_layouts(net).items():
        members = [layout.module, *(m for m, _ in layout.producers), *layout.consumers]
        n = max(1, round((1 - fraction) * layout.heads))
        if n < layout.heads and not any(names[id(m)] in keep for m in members):
            layout.keep(torch.sort(torch.topk(layout.importance(), n).indices).values)
        kept[name] = layout.heads
    return kept


def _output_layers(net: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The convolutions and linear layers whose outputs reach the network's output through no other such layer:
    their channels are the output's (METER: the last convolution; PixelFormer: the per-pixel bin logits and the
    bin-width MLP, joined by a softmax, a cumulative sum and an expectation), so they stay whole. Found by walking
    the autograd graph of one forward back from the output, stopping at each such layer."""
    kinds = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
    modules = dict(net.named_modules())
    made: dict[object, nn.Module] = {}  # grad_fn of a layer's output -> the layer

    def record(name: str, _args: tuple, _kwargs: dict, out: object) -> None:
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            made[out.grad_fn] = modules[name]

    with forward_hooks(((n, m) for n, m in modules.items() if isinstance(m, kinds)), record), torch.enable_grad():
        out = net(example.detach().clone().requires_grad_(True))
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


PRUNE_SCOPES = ("all", "internal")


def check_scope(scope: str) -> None:
    """One error for a ``--prune-scope`` that is not one of :data:`PRUNE_SCOPES` (``optimize`` asks before any
    work, :func:`prune_graph` for Python callers)."""
    if scope not in PRUNE_SCOPES:
        raise InputError(f"--prune-scope must be one of {', '.join(PRUNE_SCOPES)}, got {scope!r}")


def _boundary_roots(
    net: nn.Module, example: torch.Tensor, ignored: list[nn.Module], unwrapped: list
) -> list[nn.Module]:
    """The root layer of every channel group of ``net`` whose pruned channels enter or leave a block (a module
    holding others: its input or output tensor is among the group's pruned outputs). Residual streams and skip
    connections always do (they join a block's input to its output); ignoring those roots leaves only the widths
    hidden inside blocks, so every block keeps the widths of its input and output. (Torch-pruning's op types do not
    tell this: a linear layer on a feature map is a reshape and a two-input ``addmm`` in its graph.)"""
    import torch_pruning as tp

    edges: set[object] = set()  # grad_fns of the tensors entering or leaving a block, in the graph's own forward

    def record(_name: str, args: tuple, _kwargs: dict, out: object) -> None:
        for t in (*args, out):
            if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                edges.add(t.grad_fn)

    blocks = ((n, m) for n, m in net.named_modules() if n and next(m.children(), None))
    with forward_hooks(blocks, record):
        graph = tp.DependencyGraph().build_dependency(net, example, unwrapped_parameters=unwrapped)

    def crosses(group: Any) -> bool:
        return any(graph.is_out_channel_pruning_fn(dep.handler) and dep.target.grad_fn in edges for dep, _ in group)

    return [g[0].dep.target.module for g in graph.get_all_groups(ignored_layers=ignored) if crosses(g)]


def _unwrapped_parameters(net: nn.Module) -> list[tuple[str, int]]:
    """``(name, dim)`` of every parameter held by a module of ``net``'s own (not a ``torch.nn`` layer): a ViT's
    class token and position embeddings, layer-scale vectors, Swin's relative-position bias tables. Torch-pruning
    prunes such a tensor along its last dimension longer than 1 (its channels: the residual stream's width; a bias
    table's heads, never pruned with the projections whole) and warns of each at every cut of the bisection;
    they are declared with that same dimension, so the result is torch-pruning's and nothing is printed."""
    loose = []
    for prefix, m in net.named_modules():
        if type(m).__module__.startswith("torch.nn."):
            continue
        for n, p in m.named_parameters(recurse=False):
            dims = [i for i, s in enumerate(p.shape) if s > 1]
            if dims:
                loose.append((f"{prefix}.{n}".lstrip("."), dims[-1]))
    return loose


def _pruner(tp: Any) -> type:
    """torch-pruning's ``MetaPruner`` with kept widths rounded to the *nearest* multiple (at least one), as
    :func:`~depthscope.models.channels.prune_fraction` does. Its own rounding floors them: at 30 % a 32-channel
    width kept 16, and METER-XXS pruned that way by DepGraph (its early and decoder widths halved) reached RMSE
    0.838 m on NYU images 0-4 after the same distillation that took METER's own groups to 0.529 m."""

    class NearestRounding(tp.pruner.MetaPruner):
        def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
            kept = max(round_to, round_to * round((current_channels - n_pruned) / round_to))
            return max(current_channels - kept, 0)

    return NearestRounding


def _importance(tp: Any) -> Any:
    """Channel importance as METER's own groups rank channels (:meth:`ChannelGroup.importance`): each member's
    per-channel weight L2 norms (convolutions, depthwise ones included, linear layers, batch norms; outputs and
    inputs) divided by their mean, summed over the group's members. torch-pruning's ``MagnitudeImportance`` sums
    the members' *squared* norms unnormalised (the member with the largest weights decides alone) and leaves
    depthwise convolutions out; ranked that way, METER-XXS pruned 30 % by DepGraph reached RMSE 0.735 m on NYU
    images 0-4 after the distillation that took the same widths, ranked by its groups, to 0.529 m."""
    weighted = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm)
    outputs = {tp.prune_conv_out_channels, tp.prune_depthwise_conv_out_channels, tp.prune_linear_out_channels,
               tp.prune_batchnorm_out_channels}  # fmt: skip
    inputs = {tp.prune_conv_in_channels, tp.prune_depthwise_conv_in_channels, tp.prune_linear_in_channels}
    members = outputs | inputs

    class MemberNormalised(tp.importance.Importance):
        @torch.no_grad()
        def __call__(self, group: Any) -> torch.Tensor:
            score = torch.zeros(len(group[0].root_idxs))
            for i in range(len(group)):
                dep, idxs, roots = group[i].dep, group[i].idxs, group[i].root_idxs
                layer, fn = dep.layer, dep.pruning_fn
                if not isinstance(layer, weighted) or fn not in members or layer.weight is None:
                    continue
                w = layer.weight.detach()
                dim = int((fn in outputs) == getattr(layer, "transposed", False)) if w.dim() > 1 else 0
                norms = w.movedim(dim, 0).reshape(w.shape[dim], -1).norm(dim=1).float().cpu()
                if not idxs or len(norms) <= max(idxs) or None in roots:  # grouped convolution inputs: no member
                    continue
                local = norms[idxs]
                score.scatter_add_(0, torch.tensor(roots), local / local.mean().clamp_min(1e-12))
            return score

    return MemberNormalised()


def prune_graph(
    net: nn.Module,
    example: torch.Tensor,
    ratio: float,
    multiple: int = 8,
    keep: Sequence[str] = (),
    scope: str = "all",
) -> tuple[nn.Module, float]:
    """A copy of any network with ``ratio`` of its parameters removed by structured pruning along its dependency
    graph (torch-pruning's DepGraph): every group of coupled channels (a convolution's outputs with its batch
    norm, the depthwise convolution and the next layer's inputs; residual streams; transformer MLP widths) loses
    its least important channels (ranked as METER's own groups rank them: :func:`_importance`), one channel
    fraction for all groups, kept widths rounded to the nearest ``multiple`` (:func:`_pruner`), found by
    bisection. Attention modules whose layout is known lose the same fraction of whole heads (:func:`prune_heads`);
    their projections are otherwise kept whole (their widths are tied to head counts the graph does not show), as
    are the output layers (those whose outputs reach the output through no other convolution or linear layer) and
    the modules named in ``keep``.

    Args:
        net: the network (eval mode); not changed.
        example: a network input ``(1, 3, H, W)``, to trace the graph.
        ratio: the share of parameters to remove, in (0, 1).
        multiple: kept widths are multiples of it (odd widths are slow in oneDNN).
        keep: module names never pruned.
        scope: ``"all"``: every group, residual streams and skip connections included; ``"internal"``: only
            the widths hidden inside blocks (groups whose channels enter or leave no module holding others:
            :func:`_boundary_roots`), so every block keeps its input and output widths and can be distilled block
            by block.

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
    check_scope(scope)
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
    loose = _unwrapped_parameters(net)
    if scope == "internal":
        params = dict(net.named_parameters())
        roots = _boundary_roots(net, example, [modules[n] for n in fixed], [(params[p], d) for p, d in loose])
        fixed |= {names[id(m)] for m in roots}

    def cut(fraction: float) -> nn.Module:
        copy_ = copy.deepcopy(net).eval()
        prune_heads(copy_, fraction, keep)
        own = dict(copy_.named_modules())
        ignored = [own[n] for n in fixed]
        params = dict(copy_.named_parameters())
        try:
            _pruner(tp)(copy_, example, importance=_importance(tp),
                                 pruning_ratio=fraction, ignored_layers=ignored, round_to=multiple,
                                 unwrapped_parameters=[(params[p], d) for p, d in loose]).step()  # fmt: skip
        except Exception as e:  # torch-pruning raises what its tracer meets; name it, with what to do
            raise InputError(
                f"the dependency graph of {type(net).__name__} cannot be pruned ({type(e).__name__}: {e}); keep the "
                "module that fails whole with --prune-keep NAME"
            ) from None
        return copy_

    return fit_to_ratio(cut, count_params(net), ratio, (0.0, 0.95), increasing=False, steps=12, tol=5e-3,
                        what=f"the prunable channels of {type(net).__name__}")  # fmt: skip
