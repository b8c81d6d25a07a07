"""Unlabeled training images and their augmentation, for distillation and int8 calibration.

No depth labels are needed: the teacher labels every crop. ``builtin`` is the natural RGB photographs that
installed Python packages ship (scikit-image's data folder, scikit-learn's sample images, matplotlib's sample
data; :data:`BUILTIN_IMAGES`), none of them from NYU Depth V2 or KITTI, so every image of those datasets stays
unseen by a distilled student. Strong augmentation (random scale crops, flips, colour jitter, gamma, greyscale)
turns about ten photographs into a stream of distinct inputs.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from depthscope.data.io import IMAGE_SUFFIXES, read_image
from depthscope.errors import InputError

# (package, file inside the package): natural RGB photographs, at least 300 pixels on the short side.
BUILTIN_IMAGES: tuple[tuple[str, str], ...] = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/motorcycle_right.png"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)


def builtin_image_paths() -> list[Path]:
    """The :data:`BUILTIN_IMAGES` present on this machine (a package that is not installed is skipped)."""
    paths = []
    for package, rel in BUILTIN_IMAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        p = Path(next(iter(spec.submodule_search_locations))) / rel
        if p.is_file():
            paths.append(p)
    return paths


def image_paths(source: str | os.PathLike) -> list[Path]:
    """``"builtin"``, a folder of images (searched recursively), an image file or a glob pattern
    (``DIR/image_[5-9].png``) -> sorted image files; several of them joined by commas (``builtin,DIR/image_[5-9].png``) -> each one's files in
    turn, a file named twice taken once (a path that itself holds a comma is taken whole if it exists)."""
    if isinstance(source, os.PathLike) or "," not in source or Path(source).exists():
        return _source_paths(source)
    paths: dict[Path, Path] = {}  # resolved -> as found
    for part in source.split(","):
        if not part.strip():
            raise InputError(f"--train-images {source}: an empty source between commas")
        for p in _source_paths(part.strip()):
            paths.setdefault(p.resolve(), p)
    return list(paths.values())


def _source_paths(source: str | os.PathLike) -> list[Path]:
    if any(c in str(source) for c in "*?["):
        paths = sorted(Path(p) for p in glob.glob(str(source)) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise InputError(f"--train-images {source}: the pattern matches no image file")
        return paths
    if str(source) == "builtin":
        paths = builtin_image_paths()
        if not paths:
            raise InputError(
                "--train-images builtin: none of the bundled photographs was found (pip install scikit-image "
                "scikit-learn); or give a folder of images"
            )
        return paths
    root = Path(source)
    if root.is_file() and root.suffix.lower() in IMAGE_SUFFIXES:
        return [root]
    if not root.is_dir():
        raise InputError(f"--train-images {root}: not a directory or an image (give a folder of images or 'builtin')")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"--train-images {root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return paths


def load_images(paths: list[Path]) -> list[torch.Tensor]:
    """RGB images ``(3, H, W)`` in [0, 1] (:func:`read_image`: a non-RGB file is an error naming it)."""
    return [read_image(p) for p in paths]


def _uniform(gen: torch.Generator, lo: float, hi: float, n: int = 1) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def random_crop(image: torch.Tensor, size: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """A crop of 50-100 % of the image's area at the aspect ratio of ``size``, resized to ``size`` (smaller crops
    are zoom-ins that a depth teacher reads as other scenes: it predicted 5.2 m on average on 30-100 % crops of
    NYU images against 3.1 m on the whole images)."""
    h, w = image.shape[-2:]
    aspect = size[1] / size[0]
    area = float(_uniform(gen, 0.5, 1.0)) * h * w
    ch = min(h, round((area / aspect) ** 0.5))
    cw = min(w, round(ch * aspect))
    ch = min(ch, round(cw / aspect))
    top = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
    crop = image[None, :, top : top + ch, left : left + cw]
    return F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def colour_jitter(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness x[0.6, 1.4], contrast x[0.6, 1.4], saturation x[0.4, 1.6], gamma [0.7, 1.5], 10 % greyscale."""
    grey = image.mean(0, keepdim=True)
    image = grey + (image - grey) * _uniform(gen, 0.4, 1.6)
    image = image * _uniform(gen, 0.6, 1.4)
    image = image.mean() + (image - image.mean()) * _uniform(gen, 0.6, 1.4)
    image = image.clamp(0, 1) ** _uniform(gen, 0.7, 1.5)
    if float(torch.rand(1, generator=gen)) < 0.1:
        image = image.mean(0, keepdim=True).expand(3, -1, -1)
    return image.clamp(0, 1)


def augmented_batch(images: list[torch.Tensor], batch: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """``(batch, 3, *size)`` augmented crops; the same ``seed`` gives the same batch (resumable training draws
    batch ``s`` with seed ``(run seed, step s)``)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        img = images[int(torch.randint(0, len(images), (1,), generator=gen))]
        crop = random_crop(img, size, gen)
        if float(torch.rand(1, generator=gen)) < 0.5:
            crop = crop.flip(-1)
        out.append(colour_jitter(crop, gen))
    return torch.stack(out)
