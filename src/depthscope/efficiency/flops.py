"""Multiply-accumulates of one forward pass at a given input size (SPEC §5).

Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the real forward: convolutions (transposed too),
linear layers and every matrix product, so attention's ``QK^T`` and ``AV`` are in. It reports FLOPs as
2 x MACs; we report both, ``flops = 2 * macs``. Normalisation, activations, softmax, pooling and resizing are
not counted (as in fvcore's and ptflops' conventions for conv nets, which count them, if at all, separately).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class MacCount:
    """Total MACs of one forward and their split by ATen operator (e.g. ``convolution``, ``addmm``, ``bmm``)."""

    macs: int
    by_op: dict[str, int]

    @property
    def flops(self) -> int:
        return 2 * self.macs


@torch.no_grad()
def count_macs(model: torch.nn.Module, x: torch.Tensor) -> MacCount:
    """MACs of ``model(x)``; shapes matter, values do not."""
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    by_op = {str(op).split(".")[-1]: int(f) // 2 for op, f in counter.get_flop_counts()["Global"].items()}
    return MacCount(sum(by_op.values()), by_op)
