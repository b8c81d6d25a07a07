"""Reading images and depth maps with one clear error per bad file (SPEC §7)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from depthscope.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")
DEPTH_SUFFIXES = (".png", ".npy", ".tif", ".tiff")


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    return img


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An 8-bit RGB image as float ``(3, H, W)`` in ``[0, 1]``.

    RGBA, grayscale, palette and 16-bit images are refused rather than silently converted: a depth model fed
    the wrong channels gives wrong numbers without failing.
    """
    p = Path(path)
    img = _open(p)
    if img.mode != "RGB":
        raise InputError(
            f"{p}: image mode {img.mode!r} ({len(img.getbands())} channel(s)); an 8-bit RGB image is required "
            "(convert it, e.g. PIL's Image.convert('RGB'), if that is what you mean)"
        )
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def read_depth(path: str | os.PathLike, depth_scale: float = 1000.0) -> torch.Tensor:
    """A depth map in metres as float ``(H, W)``; 0 marks invalid pixels.

    PNG/TIFF integer depth (16-bit or 32-bit) is divided by ``depth_scale`` (1000 for millimetres, 256 for
    KITTI); float TIFF and ``.npy`` maps are taken to be in metres already. NaN/Inf or a map with no valid pixel
    is an error.
    """
    p = Path(path)
    if p.suffix.lower() == ".npy":
        if not p.is_file():
            raise InputError(f"{p}: file does not exist")
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(f"{p}: not a readable .npy array ({e})") from None
        arr = np.squeeze(arr)
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
            raise InputError(f"{p}: depth must be a 2-D numeric array, got {arr.dtype} of shape {arr.shape}")
        depth = arr.astype(np.float32)
    else:
        img = _open(p)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            depth = np.asarray(img).astype(np.float32) / depth_scale
        elif img.mode == "F":
            depth = np.asarray(img, dtype=np.float32)
        else:
            raise InputError(
                f"{p}: depth image mode {img.mode!r}; expected a single-channel 16/32-bit integer PNG "
                "(value / depth_scale = metres) or a float TIFF/NPY in metres"
            )
    if not np.isfinite(depth).all():
        raise InputError(f"{p}: depth contains NaN or Inf values")
    if not (depth > 0).any():
        raise InputError(f"{p}: depth map has no valid (positive) pixel")
    if (depth < 0).any():
        raise InputError(f"{p}: depth map has negative values")
    return torch.from_numpy(np.ascontiguousarray(depth))
