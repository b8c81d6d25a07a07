"""``depthscope robustness``: accuracy and explanation drift under image corruptions (KITTI-C / NYU-C style)."""

from depthscope.robustness.run import RobustnessResult, dee, robustness, summarise_robustness

__all__ = ["RobustnessResult", "dee", "robustness", "summarise_robustness"]
