"""Datasets of (image, ground-truth depth) pairs: NYU Depth V2 (folder/CSV or official ``.mat``), KITTI Eigen
(annotated PNG), and a generic folder of pairs. Every dataset yields :class:`Sample`s with depth in metres."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthscope.data.identity import data_identity
from depthscope.data.io import (
    DEPTH_HEADERS,
    DEPTH_SUFFIXES,
    IMAGE_SUFFIXES,
    check_depth_scale,
    csv_rows,
    read_depth,
    read_depth_scaled,
    read_image,
)
from depthscope.errors import InputError, warn
from depthscope.registry import Registry


@dataclass
class Sample:
    """One evaluation pair: ``image`` float ``(3,H,W)`` in [0,1]; ``depth`` metres ``(H,W)``, 0 = invalid; the
    camera when the dataset knows it (``intrinsics``: fx, fy, cx, cy in pixels of the image); and annotations a
    dataset provides (``edges``: a depth-edge map; ``planes``: named planar-region masks)."""

    name: str
    image: torch.Tensor
    depth: torch.Tensor | None
    intrinsics: tuple[float, float, float, float] | None = None
    annotations: dict[str, Any] = field(default_factory=dict)


def check_limit(limit: int | None) -> None:
    """One clear error for a ``--limit`` that would select no image (None: every image)."""
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be >= 1 image, got {limit}")


def check_pair(sample: Sample, where: str) -> Sample:
    if sample.depth is not None and tuple(sample.depth.shape) != tuple(sample.image.shape[-2:]):
        raise InputError(
            f"{where}: depth map is {tuple(sample.depth.shape)} but the image is {tuple(sample.image.shape[-2:])}"
        )
    return sample


class DepthDataset(Sequence[Sample]):
    """A sequence of samples read lazily; ``name`` says which evaluation protocol applies.

    Every sample has a unique key, :meth:`key` (its image's path relative to the dataset root, without suffix;
    ``Sample.name`` is the same string): what resumable runs record as done. It is known before the image is
    read, so finished images are skipped without decoding them.
    """

    name = "pairs"

    def key(self, i: int) -> str:
        return self[i].name

    def source(self, i: int) -> str | None:
        """The image file of sample ``i`` (what a command line that reproduces work on it names), or None when
        the image lives inside a container file (the NYU ``.mat``)."""
        return None

    def identity(self) -> dict[str, Any]:
        """Which data this is (:func:`~depthscope.data.identity.data_identity`): a run folder records it so that a
        rerun with other data is refused. This default knows only the keys; readers of files add their sizes."""
        return data_identity(getattr(self, "root", f"<{type(self).__name__}>"),
                             ((self.key(i), ()) for i in range(len(self))), self.name)  # fmt: skip

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


# Median valid depth (metres) a ground-truth map of each protocol can have: outside it, the depth scale (or the
# unit the file was written in) is wrong, and every metric would be silently wrong with it.
PLAUSIBLE_MEDIAN = {"nyu": (0.5, 10.0), "kitti": (2.0, 80.0), "pairs": (0.01, 1000.0)}  # Kinect / LiDAR ranges
COMMON_SCALES = (1.0, 10.0, 100.0, 256.0, 1000.0, 5000.0)


def check_plausible_depth(depth: torch.Tensor, dataset: str, scale: float | None, where: str) -> None:
    """One clear error for ground truth whose valid depths cannot be a ``dataset`` scene, saying which common
    ``--depth-scale`` would fit (``scale`` None: the file holds metres)."""
    lo, hi = PLAUSIBLE_MEDIAN.get(dataset, PLAUSIBLE_MEDIAN["pairs"])
    med = float(depth[depth > 0].median())
    if lo <= med <= hi:
        return
    raw = med * (scale or 1.0)
    fits = [s for s in COMMON_SCALES if lo <= raw / s <= hi]
    best = min(fits, key=lambda s: abs(math.log(raw / s / math.sqrt(lo * hi)))) if fits else None  # most typical
    hint = f"; --depth-scale {best:g} would give a median of {raw / best:.3g} m" if best and scale else ""
    how = f"value / {scale:g}" if scale else "the file's values as metres"
    raise InputError(
        f"{where}: median valid depth {med:.4g} m ({how}) is outside {lo:g}..{hi:g} m, implausible for {dataset} "
        f"ground truth: the depth scale or unit is wrong{hint}"
    )


class PairsDataset(DepthDataset):
    """Image/depth file pairs, from a CSV (``image_path,depth_path``, relative to the CSV) or a folder where
    ``image_<id>.<ext>`` pairs with ``depth_<id>.<ext>``. Integer depth PNG value / ``depth_scale`` = metres.
    An image without a depth map (an empty second column, no ``depth_<id>``) is a sample with ``depth=None``."""

    def __init__(self, root: str | os.PathLike, depth_scale: float = 1000.0, name: str = "pairs") -> None:
        self.root = Path(root)
        self.depth_scale = check_depth_scale(depth_scale)
        self.name = name
        self.pairs = self._find_pairs(self.root)
        base = self.root.parent if self.root.is_file() else self.root
        self.keys = unique_keys([img for img, _ in self.pairs], base, str(self.root))

    @staticmethod
    def _find_pairs(root: Path) -> list[tuple[Path, Path | None]]:
        if not root.exists():
            raise InputError(f"{root}: dataset path does not exist")
        csvs = [root] if root.is_file() else sorted(root.glob("*.csv"))
        if root.is_file() and root.suffix.lower() != ".csv":
            raise InputError(f"{root}: expected a folder of pairs or a CSV of (image_path, depth_path)")
        if csvs:
            return PairsDataset._read_csv(csvs[0])
        images = {p.stem.removeprefix("image_"): p for p in root.glob("image_*") if p.suffix.lower() in IMAGE_SUFFIXES}
        depths = {p.stem.removeprefix("depth_"): p for p in root.glob("depth_*") if p.suffix.lower() in DEPTH_SUFFIXES}
        if not images:
            raise InputError(f"{root}: no image_<id>.png / depth_<id>.png pairs and no CSV found (empty dataset)")
        key = lambda s: (len(s), s)  # noqa: E731  natural order: 2 before 10
        return [(images[k], depths.get(k)) for k in sorted(images, key=key)]  # no depth_<id>: no ground truth

    @staticmethod
    def _read_csv(path: Path) -> list[tuple[Path, Path | None]]:
        rows = csv_rows(path, ("image_path", "image", "rgb"), DEPTH_HEADERS)
        if not rows:
            raise InputError(f"{path}: CSV lists no pairs (empty dataset)")
        return [
            (path.parent / row[0].strip(), path.parent / row[1].strip() if len(row) > 1 and row[1].strip() else None)
            for row in rows
        ]

    def __len__(self) -> int:
        return len(self.pairs)

    def key(self, i: int) -> str:
        return self.keys[i]

    def source(self, i: int) -> str:
        return str(self.pairs[i][0])

    def identity(self) -> dict[str, Any]:
        return data_identity(self.root, zip(self.keys, self.pairs, strict=True), self.name)

    def __getitem__(self, i: int) -> Sample:
        img, dep = self.pairs[i]
        depth = None
        if dep is not None:
            depth, scaled = read_depth_scaled(dep, self.depth_scale)
            check_plausible_depth(depth, self.name, self.depth_scale if scaled else None, str(dep))
        sample = check_pair(Sample(self.keys[i], read_image(img), depth), str(dep or img))
        sample.intrinsics = protocol_intrinsics(self.name, *sample.image.shape[-2:])
        if i == 0:
            h, w = sample.image.shape[-2:]
            if self.name == "kitti" and w < 2.5 * h:
                warn(f"{img}: a {h}x{w} image is not a KITTI frame (about 375x1242); is --dataset kitti right?")
            if self.name == "nyu" and w > 2 * h:
                warn(f"{img}: a {h}x{w} image is not an NYU frame (480x640); is --dataset nyu right?")
        return sample


# The colour camera of NYU Depth V2 (its toolbox's camera_params.m), for 480x640 frames: fx, fy, cx, cy in pixels.
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)


def protocol_intrinsics(dataset: str, h: int, w: int) -> tuple[float, float, float, float] | None:
    """The camera a dataset's frames are known to have (NYU at 480x640), else None (KITTI's differs by drive:
    give ``--intrinsics``)."""
    return NYU_INTRINSICS if dataset == "nyu" and (h, w) == (480, 640) else None


OUTSIDE = "_outside"  # the key prefix of an input that lies outside its source's root


def safe_key(image: str | os.PathLike, base: str | os.PathLike) -> str:
    """The key of ``image`` under root ``base``: its path relative to ``base`` without suffix
    (``scene1/rgb_00045``), computed on the paths as written (symlinks are not followed, so a link inside the
    root keeps a key inside it). An image outside the root (a list file's ``../x.png`` or ``/abs/x.png``) gets
    ``_outside/<its absolute path>``: a key is always a relative path without ``..``, so output files named by
    keys stay inside the output folder.

    Example:
        >>> safe_key("/data/set/scene1/rgb_01.png", "/data/set"), safe_key("/data/set/../victim/photo.png", "/data/set")
        ('scene1/rgb_01', '_outside/data/victim/photo')
    """
    rel = os.path.relpath(os.path.abspath(image), os.path.abspath(base))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        rel = os.path.join(OUTSIDE, os.path.abspath(image).lstrip(os.sep))
    head, tail = os.path.split(rel)
    stem = os.path.splitext(tail)[0]
    if stem in ("", ".", ".."):
        raise InputError(f"{image}: names a folder, not an image file")
    return Path(head, stem).as_posix()


def unique_keys(images: Sequence[Path], base: Path, where: str) -> list[str]:
    """Each image's :func:`safe_key` under ``base``, never the bare file name: scene folders reuse file names.
    Two inputs that would share a key (the same file listed twice, or ``x.png`` beside ``x.jpg``) are one clear
    error naming both."""
    keys, seen = [], {}
    for row, img in enumerate(images, 1):
        key = safe_key(img, base)
        if key in seen:
            first, n = seen[key]
            what = (
                f"{img} is listed twice (entries {n} and {row})"
                if os.path.abspath(first) == os.path.abspath(img)
                else f"{first} and {img} would share the output name {key!r} (the path without its suffix)"
            )
            raise InputError(f"{where}: {what}; each image once, with a name of its own")  # fmt: skip
        seen[key] = (img, row)
        keys.append(key)
    return keys


class NYUMatDataset(DepthDataset):
    """The official labeled NYU Depth V2 file ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5).

    Layout (as h5py sees the MATLAB arrays, transposed): ``images`` uint8 ``(N, 3, W, H)``, ``depths`` float
    metres ``(N, W, H)``. ``split="test"`` keeps the 654 Eigen test images listed as ``testNdxs`` (1-based) in
    the official ``splits.mat``, looked for beside the ``.mat`` unless ``splits`` names it; ``"all"`` keeps
    every frame.
    """

    name = "nyu"

    def __init__(self, path: str | os.PathLike, split: str = "test", splits: str | os.PathLike | None = None) -> None:
        import h5py

        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
            self._images, self._depths = self._file["images"], self._file["depths"]
        except (OSError, KeyError) as e:
            raise InputError(f"{self.path}: not an NYU labeled .mat (HDF5 with 'images' and 'depths'): {e}") from None
        n = self._images.shape[0]
        if split == "all":
            self.indices = list(range(n))
        elif split == "test":
            self.indices = read_nyu_test_indices(Path(splits) if splits else self.path.with_name("splits.mat"), n)
        else:
            raise InputError(f"split {split!r} is not one of test, all")

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, i: int) -> str:
        return f"nyu_{self.indices[i] + 1:04d}"

    def identity(self) -> dict[str, Any]:
        return data_identity(self.path, [(self.key(i), ()) for i in range(len(self))] + [("", (self.path,))],
                             self.name)  # fmt: skip

    def __getitem__(self, i: int) -> Sample:
        k = self.indices[i]
        image = torch.from_numpy(np.ascontiguousarray(self._images[k].transpose(0, 2, 1))).float() / 255.0
        depth = torch.from_numpy(np.ascontiguousarray(self._depths[k].T.astype(np.float32)))
        if not torch.isfinite(depth).all():
            raise InputError(f"{self.path}: frame {k + 1} depth contains NaN or Inf values")
        return check_pair(Sample(self.key(i), image, depth, protocol_intrinsics("nyu", *image.shape[-2:])),
                          f"{self.path} frame {k + 1}")  # fmt: skip


def read_nyu_test_indices(splits: Path, n_frames: int) -> list[int]:
    """0-based Eigen test indices from the official ``splits.mat`` (``testNdxs``, 1-based, 654 entries)."""
    from scipy.io import loadmat

    if not splits.is_file():
        raise InputError(
            f"{splits}: the official NYU splits.mat (testNdxs) is needed for split='test'; "
            "put it beside the labeled .mat, pass splits=PATH, or use split='all'"
        )
    try:
        idx = np.asarray(loadmat(str(splits))["testNdxs"]).reshape(-1).astype(int) - 1
    except (KeyError, ValueError, OSError) as e:
        raise InputError(f"{splits}: cannot read testNdxs ({e})") from None
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n_frames:
        raise InputError(f"{splits}: testNdxs out of range for a file of {n_frames} frames")
    return idx.tolist()


class KittiEigenDataset(DepthDataset):
    """KITTI Eigen split with the annotated depth maps (uint16 PNG, value / 256 = metres, 0 = invalid).

    ``split_file`` lists ``<image path relative to data_root> <depth path relative to gt_root> [focal]`` per line
    (the BTS/AdaBins ``eigen_test_files_with_gt.txt`` format); lines whose depth is ``None`` are skipped.
    """

    name = "kitti"

    def __init__(
        self, data_root: str | os.PathLike, split_file: str | os.PathLike, gt_root: str | os.PathLike | None = None
    ) -> None:
        self.data_root, self.gt_root = Path(data_root), Path(gt_root or data_root)
        split = Path(split_file)
        if not split.is_file():
            raise InputError(f"{split}: KITTI split file does not exist")
        self.pairs = []
        for line in split.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1] != "None":
                self.pairs.append((self.data_root / parts[0], self.gt_root / parts[1]))
        if not self.pairs:
            raise InputError(f"{split}: no image/depth pairs listed (empty dataset)")
        self.keys = unique_keys([img for img, _ in self.pairs], self.data_root, str(split))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Sample:
        img, dep = self.pairs[i]
        return check_pair(Sample(self.keys[i], read_image(img), read_depth(dep, 256.0)), str(dep))

    def key(self, i: int) -> str:
        return self.keys[i]

    def source(self, i: int) -> str:
        return str(self.pairs[i][0])

    def identity(self) -> dict[str, Any]:
        return data_identity(self.data_root, zip(self.keys, self.pairs, strict=True), self.name)


# Readers of other benchmarks by name (``depthscope.data.zeroshot`` registers DIODE, iBims-1, ETH3D, Sintel,
# ScanNet and SUN RGB-D): ``cls(path)`` opens one; ``cls.min_depth`` / ``cls.max_depth`` are its protocol's caps.
DATASETS: Registry[Any] = Registry("dataset")


def dataset_names() -> list[str]:
    """Every name ``--dataset`` takes: the built-in protocols and the registered benchmarks."""
    return ["kitti", "nyu", "pairs", *DATASETS.names()]


def open_dataset(
    path: str | os.PathLike,
    dataset: str = "pairs",
    depth_scale: float | None = None,
    split_file: str | os.PathLike | None = None,
) -> DepthDataset:
    """Open ``path`` as ``dataset``, picking the reader from the layout.

    Args:
        path: a folder of ``image_<id>``/``depth_<id>`` pairs, a CSV of ``(image_path, depth_path)``, the official
            NYU labeled ``.mat``, or a KITTI data root.
        dataset: ``nyu`` (``.mat`` with ``split_file`` = its ``splits.mat``, or pairs in millimetres), ``kitti``
            (a root with ``split_file`` = a BTS-format Eigen list, or pairs with value / 256), ``pairs``, or a
            registered benchmark: ``diode``, ``eth3d``, ``ibims``, ``scannet``, ``sintel``, ``sunrgbd``
            (:mod:`depthscope.data.zeroshot`).
        depth_scale: integer depth PNG value / ``depth_scale`` = metres (default 1000; KITTI 256).
        split_file: the NYU ``splits.mat`` or the KITTI Eigen list.

    Returns:
        A :class:`DepthDataset`: ``len(ds)`` samples, ``ds[i].image`` ``(3, H, W)`` in [0, 1], ``ds[i].depth``
        ``(H, W)`` in metres (0 = invalid) and ``ds[i].name``.

    Example:
        >>> from depthscope.data import find_data
        >>> ds = open_dataset(find_data(), "nyu")
        >>> len(ds), tuple(ds[0].image.shape), ds[0].name
        (10, (3, 480, 640), 'image_0')
    """
    p = Path(path)
    if dataset == "nyu":
        if p.suffix.lower() == ".mat":
            return NYUMatDataset(p, splits=split_file)
        return PairsDataset(p, 1000.0 if depth_scale is None else depth_scale, name="nyu")
    if dataset == "kitti":
        if split_file is not None:
            return KittiEigenDataset(p, split_file)
        return PairsDataset(p, 256.0 if depth_scale is None else depth_scale, name="kitti")
    if dataset == "pairs":
        return PairsDataset(p, 1000.0 if depth_scale is None else depth_scale)
    if dataset in DATASETS:
        return DATASETS.get(dataset)(p)
    raise InputError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(dataset_names())}")


@dataclass(frozen=True)
class DataSpec:
    """Where a dataset is and how to read it, as plain data: what a worker process or machine is sent so that it
    opens the same dataset itself (nothing of the caller's session is pickled).

    Attributes:
        path: as :func:`open_dataset` takes it (a path every worker can read).
        dataset: ``nyu``, ``kitti`` or ``pairs`` (None: the model's protocol).
        depth_scale: integer depth PNG value / scale = metres (None: the dataset's).
        split_file: the NYU ``splits.mat`` or KITTI Eigen list.

    Example:
        >>> from depthscope.data import find_data
        >>> len(DataSpec(str(find_data())).open("nyu"))
        10
    """

    path: str
    dataset: str | None = None
    depth_scale: float | None = None
    split_file: str | None = None

    def open(self, default_dataset: str = "pairs") -> DepthDataset:
        """The dataset, read as ``self.dataset`` or else ``default_dataset`` (the model's protocol)."""
        return open_dataset(self.path, self.dataset or default_dataset, self.depth_scale, self.split_file)


def as_dataset(data: DepthDataset | DataSpec | str | os.PathLike, default_dataset: str) -> DepthDataset:
    """``data`` as a dataset: itself, a :class:`DataSpec` opened, or a path opened as ``default_dataset``."""
    if isinstance(data, DepthDataset):
        return data
    if isinstance(data, DataSpec):
        return data.open(default_dataset)
    return open_dataset(data, default_dataset)
