"""Batched, chunked model calls: many perturbed or interpolated inputs of one image run a chunk at a time, with the
chunk size chosen by measurement (:func:`tune_chunk_size`), not by "bigger is better": on a 2-core CPU, large
batches are slower per sample. Used by the gradient engine (``explain``) and the perturbation scores (``assess``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

_CHUNK_CACHE: dict[tuple, int] = {}
CHUNK_CANDIDATES = (1, 2, 4, 8, 16, 32)
SLOW_RUN_S = 1.0  # a chunk that runs this long already amortises per-call overhead: larger ones only cost memory


def tune_chunk_size(fmodel: torch.nn.Module, x: torch.Tensor, n: int, backward: bool = True) -> int:
    """The chunk size (from :data:`CHUNK_CANDIDATES`, at most ``n``) with the least time per sample for a
    forward (+ backward when ``backward``), measured once per (model, input shape, number of targets, device, backward)
    and cached."""
    weights = getattr(fmodel, "weights", None)  # target models: how many targets share each forward
    n_targets = 0 if weights is None else weights.shape[0]
    key = (id(getattr(fmodel, "model", fmodel)), tuple(x.shape[1:]), n_targets, x.device.type, backward)
    if key in _CHUNK_CACHE:
        return min(_CHUNK_CACHE[key], n)

    def run(xb: torch.Tensor) -> None:
        if backward:
            fmodel(xb.requires_grad_()).flatten(1)[:, 0].sum().backward()
        else:
            with torch.no_grad():
                fmodel(xb)

    def per_sample(c: int) -> float:
        xb = x[:1].detach().expand(c, *x.shape[1:]).clone()
        sync()
        t0 = time.perf_counter()
        run(xb)
        sync()  # CUDA kernels run asynchronously: time them, not their launch
        return (time.perf_counter() - t0) / c

    def sync() -> None:
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)

    # Sweep up while a larger chunk is not clearly slower (the first call of each size warms the allocator up),
    # then time the survivors in interleaved rounds and keep each one's best: drift hits all of them alike.
    # A deep model (PixelFormer: seconds per sample) stops at the first chunk that takes SLOW_RUN_S, and a GPU
    # out-of-memory error ends the sweep, so tuning never costs more than a few runs or more memory than exists.
    times: dict[int, float] = {}
    for c in CHUNK_CANDIDATES:
        if c > max(n, 1):
            break
        try:
            first = per_sample(c)
            times[c] = first if first * c > SLOW_RUN_S else per_sample(c)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        if times[c] > 1.3 * min(times.values()) or times[c] * c > SLOW_RUN_S:
            break
    if not times:  # even one sample does not fit: report it where it happens, in the real run
        return 1
    if all(t * c <= SLOW_RUN_S for c, t in times.items()):
        for _ in range(2):
            for c in times:
                times[c] = min(times[c], per_sample(c))
    best = min(times, key=times.__getitem__)
    _CHUNK_CACHE[key] = best
    return min(best, n)


def resolve_chunk_size(fmodel: torch.nn.Module, x: torch.Tensor, n: int, chunk_size: int | str) -> int:
    """``chunk_size`` as an int: ``"auto"`` is the measured best for a forward + backward."""
    return tune_chunk_size(fmodel, x, n) if chunk_size == "auto" else int(chunk_size)


class ChunkBuffer:
    """One reusable ``(chunk, *shape)`` buffer for inputs built chunk by chunk: fresh large allocations cost page
    faults on every chunk (measured: the perturbed images took 3x longer to build without it)."""

    def __init__(self, like: torch.Tensor) -> None:
        self.like, self.buf = like, None

    def __call__(self, k: int) -> torch.Tensor:
        if self.buf is None or self.buf.shape[0] < k:
            self.buf = torch.empty(k, *self.like.shape[1:], dtype=self.like.dtype, device=self.like.device)
        return self.buf[:k]


@torch.no_grad()
def predict_chunks(
    model: torch.nn.Module,
    n: int,
    make: Callable[[slice], torch.Tensor],
    chunk_size: int | str = "auto",
    reduce: Callable[[slice, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``model`` on ``n`` inputs built a chunk at a time by ``make(slice)`` (so the ``n`` inputs never sit in
    memory at once); ``chunk_size="auto"`` takes the fastest per input, measured once by
    :func:`tune_chunk_size`. ``reduce(slice, outputs)``, if given, turns each
    chunk's outputs into what is kept (dense outputs are then never concatenated; reducing a chunk while it is
    still in cache was 5x faster than reducing all of them at the end)."""
    if chunk_size == "auto":
        chunk_size = tune_chunk_size(model, make(slice(0, 1)), n, backward=False)
    c = int(chunk_size)
    keep = reduce or (lambda s, out: out)
    return torch.cat([keep(s, model(make(s))) for s in (slice(i, min(i + c, n)) for i in range(0, n, c))])


@contextmanager
def reserve_one_core(device: torch.device) -> Iterator[None]:
    """On CPU, leave one core to the decode/score worker: intra-op threads spinning against a busy core slow the
    forward pass more than the worker gains (measured on 2 cores: 23.6 -> 39.6 ms per forward)."""
    threads = torch.get_num_threads()
    if device.type == "cpu" and threads > 1:
        torch.set_num_threads(threads - 1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
