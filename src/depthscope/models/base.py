"""The one model interface everything downstream uses (SPEC §1).

A :class:`DepthModel` takes RGB images in ``[0, 1]`` at their own resolution, ``(B, 3, H, W)``, applies the
network's own preprocessing (crop, resize, normalisation) and returns **metric depth in metres** ``(B, 1, H, W)``
at the input resolution. Everything a checkpoint needs (input size, crop, mean/std, output unit) is data in a
:class:`Preprocessing`, never a code branch. The whole path is differentiable, so attributions come out at the
input image's resolution.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from depthscope.errors import InputError, warn

UNIT_TO_METRES = {"m": 1.0, "dm": 0.1, "cm": 0.01, "mm": 0.001}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputCrop:
    """A crop of the input image taken before resizing: ``height x width`` anchored ``bottom``/``center``.

    ``InputCrop(352, 1216, "bottom")`` is the KITTI benchmark (KB) crop: the bottom 352 rows, central 1216 columns.
    """

    height: int
    width: int
    vertical: Literal["bottom", "center"] = "center"

    def box(self, h: int, w: int) -> tuple[int, int]:
        """Top-left corner of the crop in an ``h x w`` image."""
        if h < self.height or w < self.width:
            raise InputError(f"image {h}x{w} is smaller than the model's input crop {self.height}x{self.width}")
        top = h - self.height if self.vertical == "bottom" else (h - self.height) // 2
        return top, (w - self.width) // 2


@dataclass(frozen=True)
class Preprocessing:
    """How a network sees an image and what its output means.

    ``input_size`` is the network's (H, W); ``mean``/``std`` ``None`` means no normalisation; ``unit`` is the
    unit of the raw output (``m``, ``dm``, ``cm``, ``mm``); ``output`` says whether it is metric depth, metric
    disparity-like inverse depth, or relative (affine-invariant) depth.
    """

    input_size: tuple[int, int]
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD
    unit: str = "m"
    output: Literal["depth", "disparity", "relative"] = "depth"
    crop: InputCrop | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNIT_TO_METRES:
            raise InputError(f"unit {self.unit!r} is not one of {sorted(UNIT_TO_METRES)}")
        if self.output not in ("depth", "disparity", "relative"):
            raise InputError(f"output {self.output!r} is not one of depth, disparity, relative")


@dataclass(frozen=True)
class EvalDefaults:
    """The evaluation protocol that goes with a checkpoint: depth caps (metres) and the standard crop."""

    min_depth: float = 1e-3
    max_depth: float = 10.0
    crop: str = "eigen"
    dataset: str = "nyu"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    preprocessing: Preprocessing
    eval: EvalDefaults = field(default_factory=EvalDefaults)
    weights: str | None = None  # where the weights came from (path) or None for random init
    gradcam_layer: str | None = None  # the module Grad-CAM reads unless told otherwise


class DepthModel(nn.Module):
    """Wraps a network ``net`` (normalised input -> raw depth map) into images-in, metres-out.

    A network of int8 kernels has a ``float_twin`` (a DepthModel of the float network it computes, not a
    submodule): params and MACs are counted on it, and the model is not :attr:`differentiable`.

    Args:
        net: the network.
        info: its name, :class:`Preprocessing`, evaluation protocol, weights and Grad-CAM layer.

    Example:
        >>> import depthscope as ds
        >>> model = ds.load_model("meter-xxs-nyu")
        >>> depth = model(torch.rand(1, 3, 480, 640))  # (B, 1, H, W) in metres at the input's size
        >>> tuple(depth.shape), bool((depth > 0).all())
        ((1, 1, 480, 640), True)
    """

    float_twin: DepthModel | None = None

    def __init__(self, net: nn.Module, info: ModelInfo) -> None:
        super().__init__()
        self.net = net
        self.info = info
        pp = info.preprocessing
        for name, val in (("mean", pp.mean), ("std", pp.std)):
            self.register_buffer(name, None if val is None else torch.tensor(val).view(1, 3, 1, 1), persistent=False)

    @property
    def weights_record(self) -> str:
        """Where the weights came from, as every output records it: the checkpoint path, or ``random``."""
        return self.info.weights or RANDOM_WEIGHTS

    @property
    def device(self) -> torch.device:
        """Where the model runs: its first parameter's (or buffer's) device; the CPU for a network without tensors
        (e.g. a wrapped runtime session)."""
        for t in itertools.chain(self.parameters(), self.buffers()):
            return t.device
        return torch.device("cpu")

    @property
    def differentiable(self) -> bool:
        """False for int8 kernels, which have no gradients (gradient attribution methods cannot run)."""
        return self.float_twin is None

    @property
    def preprocessing(self) -> Preprocessing:
        return self.info.preprocessing

    @property
    def name(self) -> str:
        return self.info.name

    def crop_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The ``(H, W)`` the network's input is resized from for an image of ``size``: the crop's, or ``size``."""
        crop = self.preprocessing.crop
        return tuple(size) if crop is None else (crop.height, crop.width)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        """``(..., H, W)`` -> the model's input crop of it (the whole of it for models without one)."""
        crop = self.preprocessing.crop
        if crop is None:
            return image
        top, left = crop.box(*image.shape[-2:])
        return image[..., top : top + crop.height, left : left + crop.width]

    def uncrop(self, m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """A map on the crop's grid -> an image of ``size``, zero outside the crop (inverse of :meth:`crop`)."""
        crop = self.preprocessing.crop
        if crop is None:
            return m
        h, w = size
        top, left = crop.box(h, w)
        return F.pad(m, (left, w - left - crop.width, top, h - top - crop.height))

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """Crop, resize (bilinear, antialiased) and normalise ``(B,3,H,W)`` images for the network."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise InputError(f"model input must be (B, 3, H, W) RGB in [0, 1], got shape {tuple(image.shape)}")
        pp = self.preprocessing
        image = self.crop(image)
        if tuple(image.shape[-2:]) != tuple(pp.input_size):
            image = F.interpolate(image, size=pp.input_size, mode="bilinear", align_corners=False, antialias=True)
        if self.mean is not None:
            image = (image - self.mean) / self.std
        return image

    def to_metres(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Raw network output -> depth in metres at ``size`` (the input size, or the crop's)."""
        pp = self.preprocessing
        out = raw * UNIT_TO_METRES[pp.unit]
        if tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out

    def finish(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Raw network output -> depth in metres ``(B, 1, H, W)`` for an input image of ``size`` (0 outside the
        input crop, as in the KITTI benchmark evaluation)."""
        return self.uncrop(self.to_metres(raw, self.crop_size(size)), size)

    @property
    def linear_io(self) -> bool:
        """True when :meth:`prepare` is affine in the image and :meth:`finish` linear in the raw output (crop,
        resize, normalise, unit scale, upsample, pad): attribution engines then run the network alone per sample
        and map gradients through the fixed pre/post-processing once (exact, see ``explain.targets``)."""
        return True

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.finish(self.net(self.prepare(image)), tuple(image.shape[-2:]))

    def attention_modules(self) -> list[nn.Module]:
        """The modules whose attention matrices Attention Rollout combines, in forward order."""
        return [m for m in self.net.modules() if hasattr(m, "record") and hasattr(m, "last_attention")]

    def with_info(self, **changes: object) -> DepthModel:
        """A wrapper sharing ``net`` with some fields of ``info`` replaced."""
        return DepthModel(self.net, replace(self.info, **changes))


RANDOM_WEIGHTS = "random"


def warn_if_untrained(model: DepthModel, consequence: str) -> None:
    """The one warning, worded alike by every command, for a model without a checkpoint: ``consequence`` says
    what its output then is not (e.g. ``"its metrics describe no trained model"``)."""
    if model.info.weights is None:
        warn_untrained(model.name, consequence)


def warn_untrained(name: str, consequence: str) -> None:
    """:func:`warn_if_untrained`'s warning for a model known by ``name`` only (e.g. loaded by Ray workers)."""
    warn(f"{name} has random weights (no checkpoint was loaded): {consequence}")


def wrap(
    module: nn.Module,
    input_size: tuple[int, int],
    mean: tuple[float, float, float] | None = IMAGENET_MEAN,
    std: tuple[float, float, float] | None = IMAGENET_STD,
    output: Literal["depth", "disparity", "relative"] = "depth",
    unit: str = "m",
    name: str | None = None,
    max_depth: float = 10.0,
) -> DepthModel:
    """Wrap any ``nn.Module`` mapping normalised ``(B,3,h,w)`` images to ``(B,1,h',w')`` depth in one line.

    Args:
        module: the network; it sees images resized to ``input_size`` and normalised with ``mean``/``std``.
        input_size: the network's ``(H, W)``.
        mean: per-channel normalisation mean (None: no normalisation).
        std: per-channel normalisation std.
        output: ``depth`` (metric), ``disparity`` or ``relative`` (evaluated after alignment).
        unit: the raw output's unit: ``m``, ``dm``, ``cm`` or ``mm``.
        name: the model's name in results (default: the module's class name).
        max_depth: the upper depth cap of its evaluation, in metres.

    Returns:
        A :class:`DepthModel`: images in [0, 1] at any size -> depth in metres at that size.

    Example:
        >>> net = torch.nn.Conv2d(3, 1, 3, padding=1)
        >>> model = wrap(net, input_size=(64, 64), unit="cm", name="toy")
        >>> tuple(model(torch.rand(2, 3, 120, 160)).shape), model.name
        ((2, 1, 120, 160), 'toy')
    """
    pp = Preprocessing(tuple(input_size), mean, std, unit, output)  # type: ignore[arg-type]
    info = ModelInfo(name or type(module).__name__, pp, EvalDefaults(max_depth=max_depth))
    return DepthModel(module, info)


def source_type(net: nn.Module) -> type:
    """The class a traced or quantised ``GraphModule`` was made from (recorded in its ``meta``), else ``net``'s own:
    what decides which per-architecture rule (e.g. Attention Rollout's) applies to it."""
    meta = getattr(net, "meta", None)
    return meta.get("source_type", type(net)) if isinstance(meta, dict) else type(net)


def require_modules(net: nn.Module, names: Sequence[str], option: str) -> None:
    """One error naming the entries of ``names`` that are not modules of ``net``.

    Args:
        net: the network whose ``named_modules()`` the names refer to.
        names: module names a user gave (e.g. ``--keep-float`` or ``--prune-keep``).
        option: the option they came from, named in the error.

    Raises:
        InputError: ``"--keep-float: 'decoder.nope' is not a module of the network (names as in named_modules(),
            e.g. ...)"``.
    """
    have = dict(net.named_modules())
    unknown = [n for n in names if n not in have or not n]
    if unknown:
        raise InputError(f"{option}: {', '.join(map(repr, unknown))} is not a module of the network "
                         f"(names as in named_modules(), e.g. {', '.join(list(have)[1:4])})")  # fmt: skip
