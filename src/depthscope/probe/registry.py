"""Shortcut probes are registered objects: a name, a one-line description, a kind and an edit of the input.

A probe edits the image in a controlled way and asks how far the predicted depth moves. ``frame`` probes touch
only the outer ring of pixels (NYU images carry a white frame 6-8 px wide); ``control`` probes move the content
while keeping the ring (a model that reads the scene should barely change); ``cue`` probes test a documented
monocular cue (the vertical position of the content, van Dijk & de Croon, ICCV 2019); ``photometric`` probes
change brightness or contrast; ``geometry`` probes mirror the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from depthscope.registry import Registry

Edit = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) in [0, 1] -> the edited images, same shape
KINDS = ("frame", "control", "cue", "photometric", "geometry")


@dataclass(frozen=True)
class Probe:
    """One registered probe.

    Attributes:
        name: registry name (``--probes NAME``).
        description: what it does, as a phrase that reads before "changes the mean depth by ..." in a warning
            ("blurring the outer 8-px frame").
        kind: one of :data:`KINDS`.
        edit: the edit of a batch of images ``(B, 3, H, W)`` in [0, 1].
        undo: for edits that move pixels (a mirror), the inverse on depth maps ``(B, H, W)`` so the RMSE compares
            the same scene points; None: depth maps are compared as they are.
    """

    name: str
    description: str
    kind: str
    edit: Edit
    undo: Callable[[torch.Tensor], torch.Tensor] | None = None


PROBES: Registry[Probe] = Registry("probe")


def register_probe(name: str, description: str, kind: str, undo: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> Callable[[Edit], Edit]:  # fmt: skip
    """Decorator: register the decorated edit as probe ``name``.

    Example:
        >>> @register_probe("doc_darken", "darkening the image by half", "photometric")
        ... def darken(x):
        ...     return x * 0.5
        >>> PROBES.get("doc_darken").kind
        'photometric'
        >>> PROBES.unregister("doc_darken")
    """
    if kind not in KINDS:
        raise ValueError(f"probe {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def deco(edit: Edit) -> Edit:
        PROBES.register(name)(Probe(name, description, kind, edit, undo))
        return edit

    return deco
