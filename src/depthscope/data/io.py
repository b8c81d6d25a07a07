"""Reading images and depth maps with one clear error per bad file (SPEC §7)."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from depthscope.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")
DEPTH_SUFFIXES = (".png", ".npy", ".tif", ".tiff")


MIN_SIDE = 2  # pixels; a 1-pixel side cannot be resized, blurred or cropped meaningfully


def _open(path: Path) -> Image.Image:
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    try:
        with warnings.catch_warnings():  # Pillow only warns between 1x and 2x its limit; the model would run out
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # of memory on such an image
            img = Image.open(path)
            img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(
            f"{path}: {e}; if you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS before loading it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    return img


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An 8-bit RGB image as float ``(3, H, W)`` in ``[0, 1]``.

    RGBA, grayscale, palette and 16-bit images are refused rather than silently converted: a depth model fed
    the wrong channels gives wrong numbers without failing.
    """
    p = Path(path)
    img = ImageOps.exif_transpose(_open(p))  # a camera JPEG's pixels as they are meant to be seen
    if min(img.size) < MIN_SIDE:
        raise InputError(f"{p}: image is {img.size[1]}x{img.size[0]}; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if img.mode != "RGB":
        raise InputError(
            f"{p}: image mode {img.mode!r} ({len(img.getbands())} channel(s)); an 8-bit RGB image is required "
            "(convert it, e.g. PIL's Image.convert('RGB'), if that is what you mean)"
        )
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def check_depth_scale(depth_scale: float) -> float:
    """``depth_scale`` if it is a usable divisor (1e-6 to 1e9: float32 depths stay finite), else one error naming
    the option."""
    if not (isinstance(depth_scale, int | float) and np.isfinite(depth_scale) and 1e-6 <= depth_scale <= 1e9):
        raise InputError(
            f"--depth-scale must be a number from 1e-6 to 1e9 (integer depth value / scale = metres; NYU 1000, "
            f"KITTI 256), got {depth_scale}"
        )
    return float(depth_scale)


def read_depth(path: str | os.PathLike, depth_scale: float = 1000.0) -> torch.Tensor:
    """A depth map in metres as float ``(H, W)``; 0 marks invalid pixels.

    PNG/TIFF integer depth (16-bit or 32-bit) is divided by ``depth_scale`` (1000 for millimetres, 256 for
    KITTI); float TIFF and ``.npy`` maps are taken to be in metres already. NaN/Inf or a map with no valid pixel
    is an error.
    """
    return read_depth_scaled(path, depth_scale)[0]


def read_depth_scaled(path: str | os.PathLike, depth_scale: float = 1000.0) -> tuple[torch.Tensor, bool]:
    """:func:`read_depth` and whether the file held integers divided by ``depth_scale`` (False: float metres)."""
    p = Path(path)
    check_depth_scale(depth_scale)
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
        depth, scaled = arr.astype(np.float32), False
    else:
        img = _open(p)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            depth, scaled = np.asarray(img).astype(np.float32) / depth_scale, True
        elif img.mode == "F":
            depth, scaled = np.asarray(img, dtype=np.float32), False
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
    return torch.from_numpy(np.ascontiguousarray(depth)), scaled


DEPTH_HEADERS = ("depth_path", "depth", "gt", "depth_gt", "gt_path")


def csv_rows(path: str | os.PathLike, headers: Sequence[str], second: Sequence[str] = ()) -> list[list[str]]:
    """The rows of a list file (CSV), without empty and ``#`` comment lines and without a header row: a first
    row with a cell in ``headers`` (the image column's names) or ``second`` (the second column's), any case.
    A header puts its columns in order: the image column first, then the ``second`` one, whatever the file's
    order (``depth_path,image_path`` is read as the header it is, not as a pair of files)."""
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    if not rows:
        return rows
    names = [c.strip().lower() for c in rows[0]]
    if not any(n in headers or n in second for n in names):
        return rows
    image = next((k for k, n in enumerate(names) if n in headers), None)
    if image is None:
        raise InputError(f"{path}: its header {','.join(rows[0])} names no image column ({', '.join(headers)})")
    other = next((k for k, n in enumerate(names) if n in second), None)
    order = [image, *([other] if other is not None else [])]
    order += [k for k in range(len(names)) if k not in order]
    return [[r[k] if k < len(r) else "" for k in order] for r in rows[1:]]


def check_image_tensor(x: object, where: str = "image") -> torch.Tensor:
    """``x`` as a float32 image tensor ``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1], or one clear error.

    A numpy array is accepted (``(H, W, 3)`` or ``(3, H, W)``). Integer images (uint8 0..255), values outside
    [0, 1] and NaN/Inf are refused: a model fed them gives wrong depth without failing."""
    if isinstance(x, np.ndarray):
        if x.ndim == 3 and x.shape[-1] == 3 and x.shape[0] != 3:
            x = np.moveaxis(x, -1, 0)
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{where} must be a tensor, a numpy array or an image file, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InputError(f"{where} is {x.dtype}; images are float in [0, 1]: use x.float() / 255 for 8-bit values")
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise InputError(f"{where} must be (3, H, W) or (B, 3, H, W) RGB, got shape {tuple(x.shape)}")
    if min(x.shape[-2:]) < MIN_SIDE:
        raise InputError(f"{where} is {x.shape[-2]}x{x.shape[-1]}; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if not torch.isfinite(x).all():
        raise InputError(f"{where} contains NaN or Inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        hint = ": divide by 255" if hi > 1.5 else ""
        raise InputError(f"{where} values span {lo:.4g}..{hi:.4g}; images must be in [0, 1]{hint}")
    return x.float()
