"""Shared set-up for the benchmarks: real METER-XXS weights and the NYU sample through the project's lookup."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("DEPTHSCOPE_WEIGHTS", str(SHARED / "weights"))
os.environ.setdefault("DEPTHSCOPE_DATA", str(SHARED / "data"))


def setup(threads: int = 2):
    """(model, dataset) = (meter-xxs-nyu, NYU sample), with ``threads`` CPU threads."""
    from depthscope.data import open_dataset
    from depthscope.data.sources import find_data
    from depthscope.models import load_model

    torch.set_num_threads(threads)
    return load_model("meter-xxs-nyu"), open_dataset(find_data(), "nyu")


def best_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, device: torch.device | str = "cpu") -> float:
    """Best wall time in seconds over ``repeats`` runs after ``warmup`` runs (min is the least noisy estimate);
    on CUDA each run is synchronised before and after, so queued kernels are inside the timing."""

    def sync() -> None:
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def interleaved_best(fns: dict[str, Callable[[], object]], rounds: int = 3, warmup: int = 1) -> dict[str, float]:
    """Best wall time in seconds of each of ``fns`` over ``rounds`` rounds that run every function once in turn:
    machine drift (10-20 % on a shared VM) then hits all of them alike, so their ratios are fair."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best
