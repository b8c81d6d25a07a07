"""Depth metric groups beyond the standard ten, each one registered :class:`DepthMetricGroup`: its columns (unit,
direction, definition), what it needs (camera intrinsics, dense ground truth, annotations a dataset provides) and
a pure function of one scene. ``evaluate --metrics standard,boundary,normals,...`` computes the named groups per
image and aggregates them (NaN-skipping mean over images)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from depthscope.output.depth import Intrinsics
from depthscope.registry import Registry


@dataclass(frozen=True)
class MetricColumn:
    """One per-image column: name, unit (empty: unitless), direction and a one-sentence definition."""

    name: str
    lower_is_better: bool
    unit: str = ""
    description: str = ""


@dataclass
class DepthScene:
    """What a metric group sees of one image: the prediction (aligned and capped as the standard metrics see
    it) and the ground truth, ``(H, W)`` metres; ``valid`` the pixels that count (caps and crop); the camera
    (None when neither the dataset nor ``--intrinsics``/``--fov`` give it); and the dataset's annotations
    (``edges``: a bool ``(H, W)`` depth-edge map; ``planes``: ``{name: bool (H, W)}`` planar regions)."""

    pred: torch.Tensor
    gt: torch.Tensor
    valid: torch.Tensor
    intrinsics: Intrinsics | None = None
    annotations: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DepthMetricGroup:
    """A registered group of depth metrics.

    Attributes:
        name: the registry name (``evaluate --metrics NAME``).
        description: one sentence.
        columns: ``options -> [MetricColumn]`` (columns may depend on options, e.g. depth bins).
        fn: ``(scene, options) -> {column: value}`` (NaN where the image has nothing to score).
        needs: ``intrinsics`` and/or annotation names (``edges``, ``planes``) without which it cannot run.
        defaults: the group's options and their defaults.
    """

    name: str
    description: str
    columns: Callable[[Mapping[str, Any]], list[MetricColumn]]
    fn: Callable[[DepthScene, Mapping[str, Any]], dict[str, float]]
    needs: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)


DEPTH_METRICS: Registry[DepthMetricGroup] = Registry("depth metric group")


def register_depth_metrics(group: DepthMetricGroup) -> DepthMetricGroup:
    """Add ``group`` to :data:`DEPTH_METRICS` (a new group of depth metrics is one call)."""
    return DEPTH_METRICS.register(group.name)(group)


DENSE_SHARE = 0.3  # a ground truth with fewer valid pixels (KITTI's LiDAR: 4-12 %) has no edges or normals to compare


def is_dense(scene: DepthScene) -> bool:
    """Whether the scene's ground truth is dense enough for boundary and normal metrics (at least
    :data:`DENSE_SHARE` of the image valid); on sparse ground truth those metrics are NaN."""
    return float(scene.valid.double().mean()) >= DENSE_SHARE
