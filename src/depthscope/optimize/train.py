"""A resumable training loop: progress bar, atomic checkpoints every few steps, same result after a resume.

Batch ``s`` of a phase is a pure function of ``(seed, s)`` (see :func:`~depthscope.optimize.images.augmented_batch`),
and the checkpoint holds the module's weights, the optimizer's state and the losses so far, so an interrupted run
started again with the same command continues where its last checkpoint left off and ends with the weights an
uninterrupted run would have (up to float rounding). Checkpoints are plain tensors and numbers, read back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from depthscope.errors import CheckpointError, InputError
from depthscope.output.files import write_atomic


def save_state(
    path: Path,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    losses: list[float],
    signature: str,
    average: WeightAverage | None = None,
) -> None:
    """Write a training checkpoint atomically (a crash mid-write leaves the previous one)."""
    buf = io.BytesIO()
    state = {
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "losses": losses,
        "signature": signature,
    }
    if average is not None:
        state["average"], state["n_average"] = average.tensors, average.count
    torch.save(state, buf)
    write_atomic(path, buf.getvalue())


LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``steps``: 1 (``constant``), or half a cosine
    from 1 at step 0 down to 0 at step ``steps`` (``cosine``, Loshchilov & Hutter 2017, without restarts), so a phase
    ends at rest rather than wherever a constant rate's noise leaves it (on METER's pruning it narrowed the spread
    between seeds; README)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(steps, 1)))
    raise InputError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")


class WeightAverage:
    """The running mean of parameters over training steps (stochastic weight averaging, Izmailov et al. 2018: the
    mean of the weights a constant rate visits lies nearer the centre of the basin than any one of them; on METER's
    pruning the unseen-image RMSE after single steps 50 apart swung by up to 0.16 m, the running mean's by at most
    0.03 m, README). Batch norms are left alone: depthscope trains with their statistics frozen."""

    def __init__(self, params: list[nn.Parameter], tensors: list[torch.Tensor] | None = None, count: int = 0):
        self.params = params
        self.tensors = tensors if tensors is not None else [p.detach().clone() for p in params]
        self.count = count

    @torch.no_grad()
    def update(self) -> None:
        """Add the parameters' current values to the mean."""
        self.count += 1
        for mean, p in zip(self.tensors, self.params, strict=True):
            mean.add_((p.detach() - mean) / self.count)

    @torch.no_grad()
    def apply(self) -> None:
        """Give the parameters the mean (nothing if no step was averaged)."""
        if self.count:
            for mean, p in zip(self.tensors, self.params, strict=True):
                p.copy_(mean)


def average_start(average_from: float, steps: int) -> int:
    """The first step (0-based) whose weights :class:`WeightAverage` takes, for averaging from the fraction
    ``average_from`` of a ``steps``-step phase on; ``steps`` (no step averaged) for ``average_from`` 1."""
    if not 0 <= average_from <= 1:
        raise InputError(f"--e2e-average-from must be in [0, 1] (a fraction of the phase), got {average_from}")
    return min(steps, math.floor(average_from * steps))


def load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"cannot read training checkpoint {path}: {type(e).__name__}: {e}; delete it to restart"
        ) from None


def train_phase(
    name: str,
    module: nn.Module,
    params: Iterable[nn.Parameter],
    loss_at: Callable[[int], torch.Tensor],
    steps: int,
    state_path: str | os.PathLike,
    lr: float = 1e-3,
    save_every: int = 20,
    progress: bool = True,
    signature: str = "",
    schedule: str = "constant",
    average_from: float = 1.0,
    select: Callable[[], float] | None = None,
    report: dict | None = None,
) -> list[float]:
    """Minimise ``loss_at(step)`` over ``params`` (AdamW, ``lr`` times :func:`lr_factor` of ``schedule``) for
    ``steps`` steps, checkpointing ``module`` and the optimizer to ``state_path`` every ``save_every`` steps and at
    the end; resume from it if present.

    ``signature`` names the run's settings: a state saved under another one is refused (resuming it would mix two
    runs). Returns the loss of every step. A finished phase found on disk is loaded and not run again (a larger
    ``steps`` continues it under a constant rate; under a decaying one the rate of every step depends on
    ``steps``, so the state of another ``steps`` is refused).

    ``average_from`` < 1: the phase ends with the mean of the weights after each step from
    :func:`average_start` on (:class:`WeightAverage`) instead of the last step's; the checkpoint keeps the mean,
    and a state of another ``steps`` is refused (the averaged steps depend on it). With ``select`` (a score of the
    module's current weights, lower is better, e.g. the loss on held-out batches), the phase keeps whichever of the
    mean and the last step's weights scores lower: a mean of weights that are still moving far can be worse than
    any of them (METER-XXS pruned by 50 %: RMSE 1.37 m for the mean against 0.66 m for the last step, README).
    ``report`` receives both scores and the choice.
    """
    lr_factor(schedule, 0, steps)  # an unknown schedule fails before anything is read
    first_averaged = average_start(average_from, steps)
    if schedule != "constant":
        signature = f"{signature} schedule={schedule} steps={steps}"
    if first_averaged < steps:
        signature = f"{signature} average_from={average_from} steps={steps}"
    path = Path(state_path)
    params = list(params)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    average = WeightAverage(params) if first_averaged < steps else None
    start, losses = 0, []
    if path.is_file():
        state = load_state(path)
        if state.get("signature", "") != signature:
            raise CheckpointError(
                f"{path} is the training state of other settings ({state.get('signature')}), not of these "
                f"({signature}); use another output directory, or delete it to start again"
            )
        start = int(state["step"])
        if start > steps:
            raise CheckpointError(
                f"{path} holds {start} steps of {name}, more than the {steps} asked for: its weights are not those "
                f"of a {steps}-step run; use another output directory, or --steps >= {start} to continue it"
            )
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        losses = list(state["losses"])
        if average is not None:
            average = WeightAverage(params, state["average"], int(state["n_average"]))
    bar = tqdm(total=steps, initial=start, desc=name, disable=not progress, leave=False)
    for step in range(start, steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_factor(schedule, step, steps)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_at(step)
        if not torch.isfinite(loss):
            raise InputError(f"{name}: loss is {loss.item()} at step {step}; lower --lr")
        loss.backward()
        optimizer.step()
        if average is not None and step >= first_averaged:
            average.update()
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4g}")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_state(path, module, optimizer, step + 1, losses, signature, average)
    bar.close()
    if average is not None:
        _end_with_average(average, select, report)
    return losses


def _end_with_average(average: WeightAverage, select: Callable[[], float] | None, report: dict | None) -> None:
    """Give the parameters the mean, or, with ``select``, whichever of the mean and the current (last step's)
    weights scores lower; the scores and the choice go into ``report``."""
    if select is None or not average.count:
        average.apply()
        return
    last_weights = [p.detach().clone() for p in average.params]
    last = select()
    average.apply()
    mean = select()
    if last < mean:
        with torch.no_grad():
            for p, w in zip(average.params, last_weights, strict=True):
                p.copy_(w)
    if report is not None:
        report.update(mean_score=mean, last_score=last, kept="last step" if last < mean else "mean")
