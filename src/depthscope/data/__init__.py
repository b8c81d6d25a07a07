"""Datasets and file readers; every depth comes out in metres with 0 marking invalid pixels."""

from depthscope.data.datasets import (
    DepthDataset,
    KittiEigenDataset,
    NYUMatDataset,
    PairsDataset,
    Sample,
    open_dataset,
)
from depthscope.data.io import read_depth, read_image

__all__ = [
    "DepthDataset",
    "KittiEigenDataset",
    "NYUMatDataset",
    "PairsDataset",
    "Sample",
    "open_dataset",
    "read_depth",
    "read_image",
]
