"""Parameter counts and model bytes (SPEC §5)."""

from __future__ import annotations

from collections import Counter

import torch


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor once)."""
    seen = {id(p): p for p in model.parameters() if p.requires_grad or not trainable_only}
    return sum(p.numel() for p in seen.values())


def param_bytes(model: torch.nn.Module) -> dict[str, int]:
    """Bytes of the state_dict tensors (parameters and persistent buffers, e.g. BN statistics) by dtype."""
    by_dtype: Counter[str] = Counter()
    seen: set[int] = set()
    for t in model.state_dict().values():
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
            seen.add(t.untyped_storage().data_ptr())
            by_dtype[str(t.dtype).removeprefix("torch.")] += t.untyped_storage().nbytes()
    return dict(by_dtype)
