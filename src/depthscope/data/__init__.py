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
from depthscope.data.sources import find_data

__all__ = [
    "DepthDataset",
    "KittiEigenDataset",
    "NYUMatDataset",
    "PairsDataset",
    "Sample",
    "find_data",
    "open_dataset",
    "read_depth",
    "read_image",
]
