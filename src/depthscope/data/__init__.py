"""Datasets and file readers; every depth comes out in metres with 0 marking invalid pixels."""

from depthscope.data import zeroshot as _zeroshot  # noqa: F401  (registers DIODE, iBims-1, ETH3D, Sintel, ...)
from depthscope.data.datasets import (
    DATASETS,
    DataSpec,
    DepthDataset,
    KittiEigenDataset,
    NYUMatDataset,
    PairsDataset,
    Sample,
    as_dataset,
    dataset_names,
    open_dataset,
)
from depthscope.data.io import read_depth, read_image
from depthscope.data.sources import find_data

__all__ = [
    "DATASETS",
    "DataSpec",
    "DepthDataset",
    "KittiEigenDataset",
    "NYUMatDataset",
    "PairsDataset",
    "Sample",
    "as_dataset",
    "dataset_names",
    "find_data",
    "open_dataset",
    "read_depth",
    "read_image",
]
