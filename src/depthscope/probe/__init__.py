"""Shortcut probes: controlled edits of the input (the outer frame, shifts and zooms of the content, its vertical
position, brightness, contrast, a mirror) and how far each moves a model's depth (``depthscope probe``)."""

from depthscope.probe.registry import KINDS, PROBES, Probe, register_probe
from depthscope.probe.run import (
    DEFAULT_THRESHOLD,
    ProbeResult,
    display_probes,
    probe,
    probe_image,
    shortcut_warnings,
)

__all__ = [
    "DEFAULT_THRESHOLD", "KINDS", "PROBES", "Probe", "ProbeResult", "display_probes", "probe", "probe_image",
    "register_probe", "shortcut_warnings",
]  # fmt: skip
