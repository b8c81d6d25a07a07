"""Depth accuracy metrics and the evaluation runner: the standard ten, and registered groups of boundary,
geometry and binned metrics (:data:`DEPTH_METRICS`)."""

from depthscope.metrics import boundary as _boundary  # noqa: F401  (registers boundary, dbe)
from depthscope.metrics import geometry as _geometry  # noqa: F401  (registers normals, pointcloud, planarity, binned)
from depthscope.metrics.depth import (
    CROPS,
    METRIC_NAMES,
    aggregate,
    crop_mask,
    depth_metrics,
    evaluate_depth,
    valid_mask,
)
from depthscope.metrics.registry import (
    DEPTH_METRICS,
    DepthMetricGroup,
    DepthScene,
    MetricColumn,
    register_depth_metrics,
)

__all__ = [
    "CROPS", "DEPTH_METRICS", "METRIC_NAMES", "DepthMetricGroup", "DepthScene", "MetricColumn", "aggregate",
    "crop_mask", "depth_metrics", "evaluate_depth", "register_depth_metrics", "valid_mask",
]  # fmt: skip
