"""Depth accuracy metrics and the evaluation runner."""

from depthscope.metrics.depth import (
    CROPS,
    METRIC_NAMES,
    aggregate,
    crop_mask,
    depth_metrics,
    evaluate_depth,
    valid_mask,
)

__all__ = ["CROPS", "METRIC_NAMES", "aggregate", "crop_mask", "depth_metrics", "evaluate_depth", "valid_mask"]
