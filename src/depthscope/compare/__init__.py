"""Two models compared on one dataset: depth agreement, attribution agreement, and the change of the assessment
scores (``depthscope compare``)."""

from depthscope.compare.agreement import depth_agreement, map_agreement
from depthscope.compare.run import compare, default_config, display_compare

__all__ = ["compare", "default_config", "depth_agreement", "display_compare", "map_agreement"]
