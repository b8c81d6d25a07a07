"""Overlap file decoding with model work: a background thread reads the next samples."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack
from typing import TypeVar

T = TypeVar("T")


def prefetch(get: Callable[[int], T], n: int, ahead: int = 2, pool: Executor | None = None) -> Iterator[T]:
    """Yield ``get(0), ..., get(n-1)`` in order while up to ``ahead`` later items load in a thread.

    PIL and NumPy release the GIL while decoding, so reading overlaps the forward pass. Errors are raised in
    order, at the item that failed. ``pool`` lets the caller share its worker thread.
    """
    with ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        pending: deque[Future[T]] = deque(pool.submit(get, i) for i in range(min(ahead, n)))
        for i in range(n):
            fut = pending.popleft()
            if i + ahead < n:
                pending.append(pool.submit(get, i + ahead))
            yield fut.result()
