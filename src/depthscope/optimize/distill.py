"""Knowledge distillation: block-wise (a new block matches the teacher block's output on the same input) and
end-to-end (the student's depth matches the teacher's depth under METER's balanced loss), both on unlabeled
augmented images, both resumable (:func:`~depthscope.optimize.train.train_phase`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from depthscope.models.base import DepthModel
from depthscope.models.hooks import forward_hooks
from depthscope.optimize.images import augmented_batch
from depthscope.optimize.losses import BalancedLoss

Batches = Callable[[int], torch.Tensor]  # step -> network-input batch


def batch_source(
    model: DepthModel, images: list[torch.Tensor], batch: int, seed: int, device: torch.device | str = "cpu"
) -> Batches:
    """Step ``s`` -> ``model.prepare``-d batch of augmented crops at the network's input size (seeded by
    ``(seed, s)``)."""
    size = tuple(model.preprocessing.input_size)

    def at(step: int) -> torch.Tensor:
        with torch.no_grad():
            return model.prepare(augmented_batch(images, batch, size, seed * 1_000_003 + step).to(device))

    return at


@contextmanager
def capture_io(net: nn.Module, names: Sequence[str]) -> Iterator[dict[str, tuple[tuple[Any, ...], torch.Tensor]]]:
    """Record ``(args, output)`` of the named submodules of ``net`` during forwards inside the block."""
    seen: dict[str, tuple[tuple[Any, ...], torch.Tensor]] = {}
    modules = dict(net.named_modules())
    with forward_hooks([(n, modules[n]) for n in names], lambda n, args, _k, out: seen.__setitem__(n, (args, out))):
        yield seen


_PLAIN = (int, float, bool, type(None))


def _signature(arg: Any) -> Any:
    """A positional argument as a comparable value: a tensor's shape, a plain value itself (a token grid
    ``(h, w)``, an absent mask), ``NotImplemented`` for anything else (a call block-wise distillation does not
    replay)."""
    if isinstance(arg, torch.Tensor):
        return ("tensor", tuple(arg.shape))
    if isinstance(arg, _PLAIN) or (isinstance(arg, tuple) and all(isinstance(a, _PLAIN) for a in arg)):
        return arg
    return NotImplemented


def _signatures(net: nn.Module, example: torch.Tensor) -> dict[str, list[Any]]:
    """Module name -> per call, the signatures of its positional arguments (:func:`_signature`) and the output
    shape (``None`` for a call block-wise distillation cannot replay: keyword arguments, an argument that is no
    tensor or plain value, or an output that is not one tensor)."""
    calls: dict[str, list[Any]] = {}

    def record(name: str, args: tuple, kwargs: dict, out: Any) -> None:
        sig = tuple(_signature(a) for a in args)
        ok = not kwargs and isinstance(out, torch.Tensor) and NotImplemented not in sig
        calls.setdefault(name, []).append((sig, out.shape) if ok else None)

    with forward_hooks(((n, m) for n, m in net.named_modules() if n), record), torch.no_grad():
        net(example)
    return calls


def kept_width_blocks(teacher: nn.Module, student: nn.Module, example: torch.Tensor) -> list[str]:
    """The blocks of a pruned ``student`` that block-wise distillation can train against ``teacher``: for every
    parameter whose shape changed, the smallest module around it that is called once, positionally, with inputs
    and output of the teacher's shapes; then only the outermost of those (an inner block trains inside its outer
    one). A parameter with no such module around it (a residual stream pruned) is left to end-to-end training.

    Example:
        >>> t = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Sequential(nn.Conv2d(8, 16, 1), nn.ReLU(), nn.Conv2d(16, 8, 1)))
        >>> s = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 1)))
        >>> kept_width_blocks(t, s, torch.zeros(1, 3, 4, 4))
        ['1']
    """
    theirs, ours = _signatures(teacher, example), _signatures(student, example)
    usable = {n for n, c in ours.items() if len(c) == 1 and c[0] is not None and theirs.get(n) == c}
    shapes = {n: p.shape for n, p in teacher.named_parameters()}
    changed = [n for n, p in student.named_parameters() if shapes.get(n) != p.shape]
    found = set()
    for name in changed:
        parts = name.split(".")[:-1]
        owners = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
        block = next((o for o in owners if o in usable), None)
        if block is not None:
            found.add(block)
    return sorted(b for b in found if not any(b.startswith(f"{o}.") for o in found))


def relative_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``out`` against ``target`` over ``target``'s mean square: blocks of any scale weigh
    alike (0 = identical, 1 = as far off as predicting zeros)."""
    return (out - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)


def blockwise_loss(teacher: nn.Module, student: nn.Module, blocks: Sequence[str], batches: Batches) -> Callable:
    """Step -> sum over ``blocks`` of the student block's :func:`relative_mse` to the teacher block's output, with
    both blocks fed the teacher's block input."""
    modules = dict(student.named_modules())

    def loss_at(step: int) -> torch.Tensor:
        with torch.no_grad(), capture_io(teacher, blocks) as io:
            teacher(batches(step))
        total = torch.zeros(())
        for name in blocks:
            args, target = io[name]
            total = total + relative_mse(modules[name](*args), target)
        return total

    return loss_at


def end_to_end_loss(
    teacher: nn.Module,
    student: nn.Module,
    batches: Batches,
    loss: BalancedLoss,
    blocks: Sequence[str] = (),
    feature_weight: float = 0.0,
) -> Callable:
    """Step -> METER's balanced loss between the student's and the teacher's raw depth on the step's batch, plus
    ``feature_weight`` times the sum over ``blocks`` of the :func:`relative_mse` of the student block's output to
    the teacher's, each network fed its own activations (feature distillation, FitNets' hints at every pruned
    block: a depth map is one channel per pixel, a block's output dozens, so few images constrain the student
    more)."""
    features = list(blocks) if feature_weight > 0 else []

    def loss_at(step: int) -> torch.Tensor:
        x = batches(step)
        with torch.no_grad(), capture_io(teacher, features) as theirs:
            target = teacher(x)
        with capture_io(student, features) as ours:
            total = loss(student(x), target)
        for name in features:
            total = total + feature_weight * relative_mse(ours[name][1], theirs[name][1])
        return total

    return loss_at
