"""Depth of images without ground truth, saved as ``.npy`` metres, 16-bit PNG, a colour preview and PLY points."""

from depthscope.predict.run import PredictResult, output_files, predict

__all__ = ["PredictResult", "output_files", "predict"]
