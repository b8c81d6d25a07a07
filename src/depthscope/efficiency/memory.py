"""Peak activation memory of one forward pass (SPEC §5).

CUDA: the caching allocator's own statistics, ``max_memory_allocated`` minus what was allocated before the
forward (weights and input), after ``reset_peak_memory_stats``.

CPU (no allocator statistics): :class:`LiveTensorBytes` watches every ATen operator's outputs through a
``TorchDispatchMode`` and keeps the bytes of the storages they hold alive (counted once per storage, released
when the last tensor on it is garbage-collected). The peak of that running sum is the activation memory the
forward needs on top of its weights and input; allocator slack and the CPU kernels' private scratch buffers are
not included.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorBytes(TorchDispatchMode):
    """Running and peak bytes of the storages held alive by tensors that operators produced inside the mode."""

    def __init__(self, existing: list[torch.Tensor] = ()) -> None:
        super().__init__()
        # Views of weights or of the input (a Linear's ``weight.t()``) are not new memory.
        self._existing = {t.untyped_storage().data_ptr() for t in existing}
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # storage pointer -> [tensors alive, bytes]

    def _release(self, key: int) -> None:
        entry = self._refs.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[key]

    def _track(self, t: torch.Tensor) -> None:
        if t.device.type == "meta":
            return
        st = t.untyped_storage()
        key = st.data_ptr()
        if key == 0 or key in self._existing:
            return
        entry = self._refs.get(key)
        if entry is None:
            entry = self._refs[key] = [0, st.nbytes()]
            self.live += entry[1]
            self.peak = max(self.peak, self.live)
        entry[0] += 1
        weakref.finalize(t, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


@torch.no_grad()
def peak_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, str]:
    """``(bytes, method)``: peak activation memory of ``model(x)`` beyond its weights and input."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
        model(x)
        torch.cuda.synchronize(x.device)
        return torch.cuda.max_memory_allocated(x.device) - before, "cuda max_memory_allocated - allocated before"
    with LiveTensorBytes([x, *model.parameters(), *model.buffers()]) as mode:
        model(x)
    return mode.peak, "cpu peak bytes of live operator outputs (TorchDispatchMode)"
