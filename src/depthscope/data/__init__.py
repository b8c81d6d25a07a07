"""Datasets and file readers; every depth comes out in metres with 0 marking invalid pixels."""

from depthscope.data.datasets import (
    DataSpec,
    DepthDataset,
    KittiEigenDataset,
    NYUMatDataset,
    PairsDataset,
    Sample,
    as_dataset,
    open_dataset,
)
from depthscope.data.io import read_depth, read_image
from depthscope.data.sources import find_data

__all__ = [
    "DataSpec",
    "DepthDataset",
    "KittiEigenDataset",
    "NYUMatDataset",
    "PairsDataset",
    "Sample",
    "as_dataset",
    "find_data",
    "open_dataset",
    "read_depth",
    "read_image",
]
