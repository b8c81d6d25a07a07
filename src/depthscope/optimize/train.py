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
    path: Path, module: nn.Module, optimizer: torch.optim.Optimizer, step: int, losses: list[float], signature: str
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
) -> list[float]:
    """Minimise ``loss_at(step)`` over ``params`` (AdamW, ``lr`` times :func:`lr_factor` of ``schedule``) for
    ``steps`` steps, checkpointing ``module`` and the optimizer to ``state_path`` every ``save_every`` steps and at
    the end; resume from it if present.

    ``signature`` names the run's settings: a state saved under another one is refused (resuming it would mix two
    runs). Returns the loss of every step. A finished phase found on disk is loaded and not run again (a larger
    ``steps`` continues it under a constant rate; under a decaying one the rate of every step depends on
    ``steps``, so the state of another ``steps`` is refused).
    """
    lr_factor(schedule, 0, steps)  # an unknown schedule fails before anything is read
    if schedule != "constant":
        signature = f"{signature} schedule={schedule} steps={steps}"
    path = Path(state_path)
    params = list(params)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
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
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4g}")
        if (step + 1) % save_every == 0 or step + 1 == steps:
            save_state(path, module, optimizer, step + 1, losses, signature)
    bar.close()
    return losses
