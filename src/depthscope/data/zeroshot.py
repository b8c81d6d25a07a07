"""Readers of the zero-shot depth benchmarks, each a registered dataset (:data:`DATASETS`): its name, how its
layout is recognised, and its evaluation protocol (depth caps in metres), following the Marigold / MoGe evaluation
code. Every reader gives :class:`~depthscope.data.datasets.Sample` s with depth in metres (0 = invalid, the
dataset's own mask applied) and the camera when the dataset records it.

========== ============================================================== =============== ==========
dataset    layout                                                         depth file      caps (m)
========== ============================================================== =============== ==========
diode      ``.../<id>.png``, ``<id>_depth.npy``, ``<id>_depth_mask.npy``  float32 metres  0.6-350
ibims      ``*.mat`` (``data``: rgb, depth, edges, calib, masks)          float metres    0.1-10
eth3d      ``images/dslr_images/*.JPG``, ``ground_truth_depth/...``      raw float32     0.1-80 (inf: invalid)
sintel     ``final/<scene>/*.png``, ``depth/<scene>/*.dpt`` (+ ``.cam``)  .dpt float32    0.1-80
scannet    ``<scene>/color/*.jpg``, ``depth/*.png``, ``intrinsic/``       uint16 mm       0.1-10
sunrgbd    ``<scene>/image/*.jpg``, ``depth/*.png``, ``intrinsics.txt``   uint16, bits rotated by 3, mm; 8 m cap  0.1-10
========== ============================================================== =============== ==========
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthscope.data.datasets import DATASETS, DepthDataset, Sample, check_pair
from depthscope.data.identity import data_identity
from depthscope.data.io import read_image
from depthscope.errors import InputError

Read = tuple[torch.Tensor, torch.Tensor, tuple[float, float, float, float] | None, dict[str, Any]]


def register_dataset(cls: type[FileDataset]) -> type[FileDataset]:
    """Class decorator: add a reader to :data:`~depthscope.data.datasets.DATASETS` under ``cls.name``."""
    return DATASETS.register(cls.name)(cls)


class FileDataset(DepthDataset):
    """A benchmark read from its own file layout: subclasses set ``name``, ``description``, the caps
    ``min_depth`` / ``max_depth`` (metres), implement :meth:`find` (the samples' files, in order, with their keys)
    and :meth:`read` (one sample), and say in :meth:`detect` whether a path has their layout."""

    name: str
    description: str
    min_depth: float
    max_depth: float
    marker: str  # what detect looks for, named in the error when it is not there

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise InputError(f"{self.root}: dataset path does not exist")
        if not self.detect(self.root):
            raise InputError(f"{self.root}: not a {self.name} layout (no {self.marker} found)")
        self.items = self.find(self.root)
        if not self.items:
            raise InputError(f"{self.root}: no {self.name} samples found (empty dataset)")

    @classmethod
    def detect(cls, root: Path) -> bool:
        raise NotImplementedError

    def find(self, root: Path) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def read(self, item: Any) -> Read:
        """``(image (3, H, W), depth (H, W) metres with 0 invalid, camera or None, annotations)`` of one item."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.items)

    def key(self, i: int) -> str:
        return self.items[i][0]

    def identity(self) -> dict[str, Any]:
        return data_identity(self.root, [(k, tuple(_files(item))) for k, item in self.items], self.name)

    def __getitem__(self, i: int) -> Sample:
        key, item = self.items[i]
        where = str(_files(item)[0])
        try:
            image, depth, k, annotations = self.read(item)
        except InputError:
            raise
        except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
            raise InputError(f"{where}: not a readable {self.name} sample ({type(e).__name__}: {e})") from None
        if not torch.isfinite(depth).all():
            raise InputError(f"{where}: depth contains NaN or Inf after the dataset's mask")
        return check_pair(Sample(key, image, depth.float(), k, annotations), where)


def _files(item: Any) -> list[Path]:
    return [p for p in (item if isinstance(item, tuple) else (item,)) if isinstance(p, Path)]


def _key(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix("")).replace(os.sep, "/")


def _need(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    return path


def _camera(m: np.ndarray) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` of a pinhole matrix (3x3, or the top-left of a 4x4)."""
    return float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2])


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(_need(path), allow_pickle=False)
    except ValueError as e:
        raise InputError(f"{path}: not a NumPy array file ({e})") from None


@register_dataset
class Diode(FileDataset):
    """DIODE (Vasiljevic et al. 2019), indoor and outdoor scans at 768x1024."""

    name, description, min_depth, max_depth = "diode", "DIODE val: indoors and outdoors, laser scans", 0.6, 350.0
    marker = "*_depth_mask.npy"
    CAMERA = (886.81, 927.06, 512.0, 384.0)  # DIODE's camera, for 768x1024 images

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(root.rglob("*_depth_mask.npy"))

    def find(self, root: Path) -> list[tuple[str, Any]]:
        out = []
        for mask in sorted(root.rglob("*_depth_mask.npy")):
            stem = mask.name.removesuffix("_depth_mask.npy")
            out.append((_key(mask.with_name(stem), root), (mask.with_name(stem + ".png"),
                        mask.with_name(stem + "_depth.npy"), mask)))  # fmt: skip
        return out

    def read(self, item: Any) -> Read:
        image_path, depth_path, mask_path = item
        image = read_image(_need(image_path))
        depth = np.squeeze(_npy(depth_path)).astype(np.float32)
        mask = np.squeeze(_npy(mask_path)) > 0
        if depth.shape != mask.shape or depth.ndim != 2:
            raise InputError(f"{depth_path}: depth {depth.shape} and mask {mask.shape} must be one (H, W) map")
        k = self.CAMERA if image.shape[-2:] == (768, 1024) else None
        return image, torch.from_numpy(np.where(mask & np.isfinite(depth), depth, 0.0)), k, {}


@register_dataset
class Ibims(FileDataset):
    """iBims-1 (Koch et al. 2018): 100 indoor scenes at 480x640 with edge maps and planar-region masks."""

    name, description, min_depth, max_depth = (
        "ibims",
        "iBims-1: indoor, high-quality laser depth, edges, planes",
        0.1,
        10.0,
    )
    marker = "*.mat files with a 'data' struct"
    PLANES = ("mask_wall", "mask_table", "mask_floor")

    @classmethod
    def detect(cls, root: Path) -> bool:
        return root.suffix.lower() == ".mat" or (root.is_dir() and any(root.glob("*.mat")))

    def find(self, root: Path) -> list[tuple[str, Any]]:
        files = [root] if root.is_file() else sorted(root.glob("*.mat"))
        base = root.parent if root.is_file() else root
        return [(_key(f, base), f) for f in files]

    def read(self, item: Any) -> Read:
        from scipy.io import loadmat

        try:
            data = loadmat(item, squeeze_me=True, struct_as_record=False)["data"]
        except (NotImplementedError, KeyError) as e:
            raise InputError(f"{item}: not an iBims-1 .mat (a MATLAB v5 file with a 'data' struct): {e}") from None
        rgb = np.asarray(data.rgb, dtype=np.uint8)
        image = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0
        depth = np.asarray(data.depth, dtype=np.float32)
        bad = np.zeros(depth.shape, bool)
        for name in ("mask_invalid", "mask_transp"):
            if hasattr(data, name):
                bad |= np.asarray(getattr(data, name)) == 0  # iBims: 1 = usable (its evaluation multiplies by them)
        calib = np.asarray(data.calib, dtype=np.float64)  # MATLAB's transposed K, 1-based principal point
        k = (float(calib[0, 0]), float(calib[1, 1]), float(calib[2, 0]) - 1.0, float(calib[2, 1]) - 1.0)
        planes, normals = {}, {}
        for name in self.PLANES:
            if not hasattr(data, name):
                continue
            labels = np.asarray(getattr(data, name))
            paras = np.atleast_2d(np.asarray(getattr(data, f"{name}_paras", np.zeros((0, 7))), dtype=np.float64))
            for j in range(int(labels.max()) if labels.size else 0):  # plane j is labelled j + 1
                key = f"{name.removeprefix('mask_')}_{j}"
                planes[key] = torch.from_numpy(labels == j + 1)
                if paras.shape[0] > j and paras.shape[1] >= 7:
                    nx, ny, nz = paras[j, 4:7]  # iBims' frame: x right, y forward (depth), z up
                    normals[key] = (nx, -nz, ny)  # the camera frame here: x right, y down, z forward
        annotations: dict[str, Any] = {"planes": planes, "plane_normals": normals}
        if hasattr(data, "edges"):
            annotations["edges"] = np.asarray(data.edges) > 0
        return image, torch.from_numpy(np.where(bad | ~np.isfinite(depth), 0.0, depth)), k, annotations


@register_dataset
class Eth3d(FileDataset):
    """ETH3D high-resolution multi-view (Schöps et al. 2017): DSLR images with laser-scan depth, raw float32."""

    name, description, min_depth, max_depth = "eth3d", "ETH3D: indoor/outdoor DSLR, laser depth", 0.1, 80.0
    marker = "images/dslr_images and ground_truth_depth/dslr_images"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(root.rglob("ground_truth_depth/dslr_images"))

    def find(self, root: Path) -> list[tuple[str, Any]]:
        out = []
        for gt_dir in sorted(root.rglob("ground_truth_depth/dslr_images")):
            scene = gt_dir.parent.parent
            for depth in sorted(p for p in gt_dir.iterdir() if p.is_file()):
                image = scene / "images" / "dslr_images" / depth.name
                out.append((_key(image, root), (image, depth, scene / "dslr_calibration_undistorted" / "cameras.txt")))
        return out

    def read(self, item: Any) -> Read:
        image_path, depth_path, cameras = item
        image = read_image(_need(image_path))
        h, w = image.shape[-2:]
        raw = np.fromfile(_need(depth_path), dtype="<f4")
        if raw.size != h * w:
            raise InputError(f"{depth_path}: {raw.size} float32 values, not the {h}x{w} of its image")
        depth = raw.reshape(h, w)
        k = None
        if cameras.is_file():  # COLMAP cameras.txt: ID MODEL W H fx fy cx cy (PINHOLE)
            for line in cameras.read_text().splitlines():
                parts = line.split()
                if (
                    parts
                    and not line.startswith("#")
                    and parts[1] == "PINHOLE"
                    and (int(parts[3]), int(parts[2])) == (h, w)
                ):
                    k = tuple(float(v) for v in parts[4:8])
                    break
        return image, torch.from_numpy(np.where(np.isfinite(depth) & (depth > 0), depth, 0.0)), k, {}


SINTEL_TAG = 202021.25  # the first float of every Sintel .dpt and .cam file


def read_dpt(path: Path) -> np.ndarray:
    """A Sintel ``.dpt`` depth file: float32 tag 202021.25, int32 width, int32 height, float32 depth (metres)."""
    data = _need(path).read_bytes()
    if len(data) < 12 or abs(float(np.frombuffer(data[:4], "<f4")[0]) - SINTEL_TAG) > 1e-3:
        raise InputError(f"{path}: not a Sintel .dpt file (wrong tag)")
    w, h = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    if w <= 0 or h <= 0 or len(data) != 12 + 4 * w * h:
        raise InputError(f"{path}: a .dpt of {w}x{h} needs {12 + 4 * max(w * h, 0)} bytes, has {len(data)}")
    return np.frombuffer(data[12:], "<f4").reshape(h, w).copy()


def read_cam(path: Path) -> tuple[float, float, float, float]:
    """A Sintel ``.cam`` file: tag, then the 3x3 intrinsics (float64, row-major), then the 3x4 extrinsics."""
    data = _need(path).read_bytes()
    if len(data) < 4 + 72 or abs(float(np.frombuffer(data[:4], "<f4")[0]) - SINTEL_TAG) > 1e-3:
        raise InputError(f"{path}: not a Sintel .cam file")
    return _camera(np.frombuffer(data[4:76], "<f8").reshape(3, 3))


@register_dataset
class Sintel(FileDataset):
    """MPI Sintel (Butler et al. 2012): rendered film frames with exact depth (``final`` pass by default)."""

    name, description, min_depth, max_depth = "sintel", "MPI Sintel: synthetic, exact depth", 0.1, 80.0
    marker = "depth/<scene>/*.dpt"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return (root / "depth").is_dir() and any((root / "depth").rglob("*.dpt"))

    def find(self, root: Path) -> list[tuple[str, Any]]:
        pass_dir = root / "final" if (root / "final").is_dir() else root / "clean"
        out = []
        for dpt in sorted((root / "depth").rglob("*.dpt")):
            rel = dpt.relative_to(root / "depth").with_suffix("")
            out.append((str(rel).replace(os.sep, "/"), (pass_dir / rel.with_suffix(".png"), dpt,
                        root / "camdata_left" / rel.with_suffix(".cam"))))  # fmt: skip
        return out

    def read(self, item: Any) -> Read:
        image_path, dpt, cam = item
        depth = read_dpt(dpt)
        k = read_cam(cam) if cam.is_file() else None
        return read_image(_need(image_path)), torch.from_numpy(np.where(np.isfinite(depth), depth, 0.0)), k, {}


def _read_png16(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(_need(path)) as img:
        arr = np.asarray(img)
    if arr.dtype not in (np.uint16, np.int32) or arr.ndim != 2:
        raise InputError(f"{path}: depth must be a 16-bit single-channel PNG, got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)


def _resized_image(path: Path, size: tuple[int, int]) -> torch.Tensor:
    img = read_image(_need(path))
    if tuple(img.shape[-2:]) != size:
        img = torch.nn.functional.interpolate(img[None], size=size, mode="bilinear", antialias=True,
                                              align_corners=False)[0].clamp(0, 1)  # fmt: skip
    return img


@register_dataset
class ScanNet(FileDataset):
    """ScanNet (Dai et al. 2017) exported frames: colour resized to the 480x640 depth, uint16 millimetres."""

    name, description, min_depth, max_depth = "scannet", "ScanNet: indoor RGB-D scans (Kinect-like)", 0.1, 10.0
    marker = "<scene>/color, <scene>/depth and <scene>/intrinsic"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(p.parent.joinpath("color").is_dir() for p in root.rglob("depth") if p.is_dir())

    def find(self, root: Path) -> list[tuple[str, Any]]:
        out = []
        for depth_dir in sorted(p for p in root.rglob("depth") if p.is_dir() and (p.parent / "color").is_dir()):
            scene = depth_dir.parent
            for depth in sorted(depth_dir.glob("*.png"), key=lambda p: (len(p.stem), p.stem)):
                out.append((_key(scene / depth.stem, root), (scene / "color" / f"{depth.stem}.jpg", depth,
                            scene / "intrinsic" / "intrinsic_depth.txt")))  # fmt: skip
        return out

    def read(self, item: Any) -> Read:
        image_path, depth_path, intr = item
        depth = _read_png16(depth_path) / 1000.0
        image = _resized_image(image_path, depth.shape)
        k = _camera(np.loadtxt(intr)) if intr.is_file() else None
        return image, torch.from_numpy(depth.astype(np.float32)), k, {}


def sunrgbd_depth(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D's stored depth to metres: the 16 bits rotated right by 3 (its toolbox's
    ``bitor(bitshift(D, -3), bitshift(D, 16 - 3))``), millimetres, capped at 8 m.

    Example:
        >>> float(sunrgbd_depth(np.array([[(1500 << 3) & 0xFFFF]]))[0, 0])
        1.5
    """
    v = raw.astype(np.uint32) & 0xFFFF
    mm = ((v >> 3) | (v << 13)) & 0xFFFF
    return np.minimum(mm / 1000.0, 8.0)


@register_dataset
class SunRgbd(FileDataset):
    """SUN RGB-D (Song et al. 2015): four RGB-D sensors; depth stored with its bits rotated."""

    name, description, min_depth, max_depth = "sunrgbd", "SUN RGB-D: indoor, four RGB-D sensors", 0.1, 10.0
    marker = "<scene>/image, <scene>/depth and <scene>/intrinsics.txt"

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(p.parent.joinpath("image").is_dir() for p in root.rglob("intrinsics.txt"))

    def find(self, root: Path) -> list[tuple[str, Any]]:
        out = []
        for intr in sorted(root.rglob("intrinsics.txt")):
            scene = intr.parent
            images = sorted((scene / "image").glob("*.jpg"))
            depths = sorted((scene / "depth_bfx").glob("*.png")) or sorted((scene / "depth").glob("*.png"))
            if images and depths:
                out.append((_key(scene, root) if scene != root else scene.name, (images[0], depths[0], intr)))
        return out

    def read(self, item: Any) -> Read:
        image_path, depth_path, intr = item
        depth = sunrgbd_depth(_read_png16(depth_path))
        image = read_image(_need(image_path))
        values = np.loadtxt(intr).reshape(-1)
        if values.size != 9:
            raise InputError(f"{intr}: intrinsics.txt must hold a 3x3 matrix, has {values.size} numbers")
        return image, torch.from_numpy(depth.astype(np.float32)), _camera(values.reshape(3, 3)), {}
