"""Image corruptions for robustness evaluation (ImageNet-C, Hendrycks & Dietterich 2019, as KITTI-C / NYU-C of
the RoboDepth benchmark use them): each a registered function of an image ``(3, H, W)`` in [0, 1], a severity
1-5 and a seed, with ImageNet-C's severity constants. Deterministic: the same seed gives the same image.

Implemented here in PyTorch/NumPy/PIL rather than through ``imagecorruptions``, which imports the removed
``pkg_resources`` and OpenCV; the formulas and constants are ImageNet-C's (``frost``, ``snow``, ``glass_blur`` and
``elastic_transform``, which need its bundled images or OpenCV, are not provided)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from depthscope.errors import InputError
from depthscope.ops.fills import gaussian_blur
from depthscope.registry import Registry
from depthscope.seeding import stream_seed

Corruption = Callable[[torch.Tensor, int, int], torch.Tensor]
CORRUPTIONS: Registry[Corruption] = Registry("corruption")
SEVERITIES = (1, 2, 3, 4, 5)


def register_corruption(name: str) -> Callable[[Corruption], Corruption]:
    """Decorator: register ``fn(image (3, H, W) in [0, 1], severity 1-5, seed) -> image`` as ``name``."""
    return CORRUPTIONS.register(name)


def corrupt(image: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """``image`` ``(3, H, W)`` in [0, 1] under corruption ``name`` at ``severity`` (1-5), seeded by ``seed`` and
    the corruption's name; the result is clipped to [0, 1].

    Example:
        >>> x = torch.rand(3, 32, 48, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(corrupt(x, "gaussian_noise", 3, seed=1), corrupt(x, "gaussian_noise", 3, seed=1))
        True
    """
    fn = CORRUPTIONS.get(name)
    if severity not in SEVERITIES:
        raise InputError(f"severity must be one of 1-5, got {severity}")
    return fn(image.float(), severity, stream_seed(seed, f"corruption_{name}_{severity}")).clamp(0, 1)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@register_corruption("gaussian_noise")
def gaussian_noise(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[s - 1]
    return x + torch.from_numpy(_rng(seed).normal(0, c, x.shape)).to(x)


@register_corruption("shot_noise")
def shot_noise(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    c = (60, 25, 12, 5, 3)[s - 1]
    return torch.from_numpy(_rng(seed).poisson(x.double().numpy() * c) / c).to(x)


@register_corruption("impulse_noise")
def impulse_noise(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    c = (0.03, 0.06, 0.09, 0.17, 0.27)[s - 1]
    r = _rng(seed)
    hit = r.random(x.shape) < c
    salt = r.random(x.shape) < 0.5
    out = x.clone()
    out[torch.from_numpy(hit & salt)] = 1.0
    out[torch.from_numpy(hit & ~salt)] = 0.0
    return out


def _disk(radius: float, sigma: float) -> torch.Tensor:
    r = math.ceil(radius)
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")
    k = ((xx**2 + yy**2) <= radius**2).float()
    k = k / k.sum()
    if sigma > 0:  # ImageNet-C anti-aliases the disk with a Gaussian
        k = gaussian_blur(k[None, None], sigma)[0, 0]
        k = k / k.sum()
    return k


def _conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r = k.shape[-1] // 2
    pad = (
        F.pad(x[None], (r, r, r, r), mode="reflect")
        if min(x.shape[-2:]) > r
        else F.pad(x[None], (r, r, r, r), mode="replicate")
    )
    return F.conv2d(pad, k.to(x)[None, None].expand(3, 1, -1, -1), groups=3)[0]


@register_corruption("defocus_blur")
def defocus_blur(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    radius, sigma = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))[s - 1]
    return _conv(x, _disk(radius, sigma))


@register_corruption("gaussian_blur")
def gaussian_blur_corruption(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    return gaussian_blur(x[None], (1, 2, 3, 4, 6)[s - 1])[0]


@register_corruption("motion_blur")
def motion_blur(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    """A Gaussian-weighted line kernel of ImageNet-C's radius and sigma at a random angle (-45 to 45 degrees)."""
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[s - 1]
    angle = math.radians(_rng(seed).uniform(-45, 45))
    t = torch.arange(0, radius + 1.0)
    w = torch.exp(-(t**2) / (2 * sigma**2))
    k = torch.zeros(2 * radius + 1, 2 * radius + 1)
    for ti, wi in zip(t.tolist(), w.tolist(), strict=True):  # the blur trails one way, as a moving camera's
        k[round(radius + ti * math.sin(angle)), round(radius + ti * math.cos(angle))] += wi
    return _conv(x, k / k.sum())


@register_corruption("zoom_blur")
def zoom_blur(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    zooms = (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02), np.arange(1, 1.26, 0.02),
             np.arange(1, 1.31, 0.03))[s - 1]  # fmt: skip
    h, w = x.shape[-2:]
    out = x.clone()
    for z in zooms:
        big = F.interpolate(x[None], scale_factor=float(z), mode="bilinear", align_corners=False)[0]
        top, left = (big.shape[-2] - h) // 2, (big.shape[-1] - w) // 2
        out += big[:, top : top + h, left : left + w]
    return out / (len(zooms) + 1)


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A ``size x size`` (power of two) diamond-square fractal in [0, 1] (ImageNet-C's fog)."""
    maparray = np.zeros((size, size))
    step = size
    maparray[0, 0] = 0
    scale = 100.0
    while step >= 2:
        half = step // 2
        corners = maparray[0:size:step, 0:size:step]
        sq = corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1) + np.roll(np.roll(corners, -1, 0), -1, 1)
        maparray[half:size:step, half:size:step] = sq / 4 + rng.uniform(-scale, scale, sq.shape)
        dd = maparray[0:size:step, 0:size:step]
        ds = maparray[half:size:step, half:size:step]
        ldr = dd + np.roll(dd, -1, 0) + ds + np.roll(ds, 1, 1)
        tdr = dd + np.roll(dd, -1, 1) + ds + np.roll(ds, 1, 0)
        maparray[half:size:step, 0:size:step] = ldr / 4 + rng.uniform(-scale, scale, ldr.shape)
        maparray[0:size:step, half:size:step] = tdr / 4 + rng.uniform(-scale, scale, tdr.shape)
        step //= 2
        scale /= decay
    maparray -= maparray.min()
    return maparray / maparray.max()


@register_corruption("fog")
def fog(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    strength, decay = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))[s - 1]
    h, w = x.shape[-2:]
    size = 2 ** math.ceil(math.log2(max(h, w)))
    top = x.max()
    plasma = torch.from_numpy(plasma_fractal(size, decay, _rng(seed))[:h, :w]).to(x)
    return (x + strength * plasma) * top / (top + strength)


@register_corruption("brightness")
def brightness(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    """HSV value + c, hue and saturation kept: every channel scaled by ``clip(V + c) / V``."""
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[s - 1]
    v = x.amax(0, keepdim=True)
    return torch.where(v > 0, x * (v + c).clamp(max=1) / v.clamp_min(1e-12), torch.full_like(x, c))


@register_corruption("contrast")
def contrast(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[s - 1]
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * c + mean


def _pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


@register_corruption("pixelate")
def pixelate(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[s - 1]
    h, w = x.shape[-2:]
    img = _pil(x).resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX).resize((w, h), Image.BOX)
    return _tensor(img)


@register_corruption("jpeg_compression")
def jpeg_compression(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    quality = (25, 18, 15, 10, 7)[s - 1]
    buf = io.BytesIO()
    _pil(x).save(buf, "JPEG", quality=quality)
    return _tensor(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@register_corruption("color_quant")
def color_quant(x: torch.Tensor, s: int, seed: int) -> torch.Tensor:
    """RoboDepth's colour quantisation: each channel kept to ``bits`` (5, 4, 3, 2, 1) bits."""
    bits = (5, 4, 3, 2, 1)[s - 1]
    levels = 2**bits
    return torch.floor(x * 255 / (256 / levels)) * (256 / levels) / 255
