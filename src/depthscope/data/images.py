"""Images without ground truth, for ``predict``: a folder (searched recursively), a glob, one file or a CSV whose
first column lists image paths. Each image gets a key, its path relative to the source's root without suffix,
which ``predict`` mirrors in its output folder."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from depthscope.data.datasets import unique_keys
from depthscope.data.identity import data_identity
from depthscope.data.io import IMAGE_SUFFIXES, csv_rows
from depthscope.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm")


@dataclass(frozen=True)
class ImageSource:
    """The images of one ``--images`` argument: ``files[i]`` is stored as ``keys[i]`` under the output root.
    ``root`` is the folder the keys are relative to (output inside it is refused)."""

    spec: str
    root: Path
    files: tuple[Path, ...]
    keys: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def identity(self) -> dict:
        """Which images these are (:func:`~depthscope.data.identity.data_identity`: the spec, keys and sizes)."""
        return data_identity(self.spec, ((k, (f,)) for k, f in zip(self.keys, self.files, strict=True)), "images")


def _natural(p: Path) -> tuple:
    """Sort key putting ``image_2`` before ``image_10``."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.as_posix()))


def _is_input(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES and not p.name.startswith(".")


def find_images(spec: str | os.PathLike) -> ImageSource:
    """The images named by ``spec``, in natural order.

    Args:
        spec: a folder (every image below it; in a folder of ``image_<id>``/``depth_<id>`` pairs only the
            ``image_*`` files), a glob pattern (``"frames/*.jpg"``), one image or video file, or a CSV whose
            first column holds image paths relative to the CSV (a header ``image``/``image_path`` is skipped).

    Returns:
        An :class:`ImageSource`; nothing is decoded yet.

    Example:
        >>> from depthscope.data import find_data
        >>> src = find_images(find_data())
        >>> len(src), src.keys[:3]
        (10, ('image_0', 'image_1', 'image_2'))
    """
    text = str(spec)
    p = Path(text)
    if any(c in text for c in "*?[") and not p.exists():
        root = Path(glob.escape(text)).parent
        while any(c in str(root) for c in "*?["):
            root = root.parent
        files = [Path(f) for f in glob.glob(text, recursive=True)]
        files = [f for f in files if _is_input(f)]
        if not files:
            raise InputError(f"--images {text}: the pattern matches no image file")
    elif p.is_dir():
        root = p
        files = [f for f in p.rglob("*") if _is_input(f)]
        pairs = [f for f in files if f.parent == p and f.stem.startswith("image_")]
        if pairs:  # an evaluation folder: its depth_* maps are not inputs
            files = [f for f in files if not (f.parent == p and f.stem.startswith("depth_"))]
        if not files:
            raise InputError(f"--images {p}: the folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
    elif p.is_file() and p.suffix.lower() == ".csv":
        root = p.parent
        rows = csv_rows(p, ("image", "image_path", "rgb", "path"))
        files = [root / r[0].strip() for r in rows if r[0].strip()]
        if not files:
            raise InputError(f"--images {p}: the CSV lists no image")
    elif p.is_file():
        if not _is_input(p):
            raise InputError(f"--images {p}: not an image ({', '.join(IMAGE_SUFFIXES)}), video, folder or CSV")
        root, files = p.parent, [p]
    else:
        raise InputError(f"--images {p}: no such file, folder or matching pattern")
    files = sorted(files, key=_natural)
    keys = unique_keys(files, root, f"--images {text}")
    return ImageSource(text, root, tuple(files), tuple(keys))


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES
