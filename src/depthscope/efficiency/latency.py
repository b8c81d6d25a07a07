"""Latency and throughput of the forward pass (SPEC §5): warm-up, repeats, median and p90.

CPU times are wall clock (``time.perf_counter``) with the thread count recorded; CUDA times come from CUDA
events around each forward, read after ``torch.cuda.synchronize`` so queued kernels are inside the timing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from depthscope.errors import InputError


@dataclass
class Latency:
    """Forward latency in milliseconds over ``repeats`` timed runs of a ``batch``-image input."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    repeats: int
    warmup: int
    batch: int
    device: str
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def device_name(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H100 ...)``: what a timing was taken on."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


@torch.no_grad()
def measure_latency(model: torch.nn.Module, x: torch.Tensor, warmup: int = 5, repeats: int = 20) -> Latency:
    """Time ``model(x)`` for inference (no autograd graph recorded, as a deployed model runs; an int8 model then
    runs compiled): ``warmup`` untimed runs, then ``repeats`` timed ones."""
    if repeats < 1 or warmup < 0:
        raise InputError(f"--repeats must be >= 1 and --warmup >= 0, got repeats {repeats}, warmup {warmup}")
    with torch.no_grad():
        return _timed(model, x, warmup, repeats)


def _timed(model: torch.nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> Latency:
    cuda = x.device.type == "cuda"
    for _ in range(warmup):
        model(x)
    times = []
    if cuda:
        torch.cuda.synchronize(x.device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for start, end in events:
            start.record()
            model(x)
            end.record()
        torch.cuda.synchronize(x.device)
        times = [s.elapsed_time(e) for s, e in events]
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times)
    return Latency(
        float(np.median(t)),
        float(np.percentile(t, 90)),
        float(t.mean()),
        float(t.min()),
        repeats,
        warmup,
        x.shape[0],
        device_name(x.device),
        torch.get_num_threads(),
    )


def throughput(
    model: torch.nn.Module, x: torch.Tensor, batches: Sequence[int] = (1, 2, 4, 8), warmup: int = 2, repeats: int = 5
) -> dict[int, float]:
    """Images per second at each batch size (median latency), ``x`` one image ``(1, 3, H, W)``."""
    out = {}
    for b in batches:
        lat = measure_latency(model, x[:1].expand(b, *x.shape[1:]).contiguous(), warmup, repeats)
        out[b] = b / (lat.median_ms / 1e3)
    return out
