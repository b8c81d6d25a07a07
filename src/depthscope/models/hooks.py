"""Forward hooks on named submodules for the length of a ``with`` block: what tracing, distillation, Grad-CAM and
the sanity checks record of a network's calls, removed on exit (also when the forward raises)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

Hook = Callable[[str, tuple, dict, Any], None]  # (module name, positional args, keyword args, output)


@contextmanager
def forward_hooks(named: Iterable[tuple[str, nn.Module]], hook: Hook, *, pre: bool = False) -> Iterator[None]:
    """Call ``hook(name, args, kwargs, output)`` after every forward of each ``(name, module)`` inside the block
    (``pre``: before it, with ``output`` ``None``).

    Example:
        >>> import torch
        >>> net, calls = nn.Sequential(nn.Linear(2, 3), nn.ReLU()), []
        >>> with forward_hooks(net.named_children(), lambda n, a, k, o: calls.append((n, tuple(o.shape)))):
        ...     _ = net(torch.zeros(1, 2))
        >>> calls
        [('0', (1, 3)), ('1', (1, 3))]
    """

    def after(name: str) -> Callable:
        def call(_m: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            hook(name, args, kwargs, out)  # returns None: the output is never replaced

        return call

    def before(name: str) -> Callable:
        def call(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            hook(name, args, kwargs, None)  # returns None: the inputs are never replaced

        return call

    handles = [m.register_forward_pre_hook(before(n), with_kwargs=True) if pre
               else m.register_forward_hook(after(n), with_kwargs=True) for n, m in named]  # fmt: skip
    try:
        yield
    finally:
        for h in handles:
            h.remove()
