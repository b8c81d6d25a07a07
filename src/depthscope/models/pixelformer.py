"""PixelFormer (Agarwal & Arora, WACV 2023): a Swin encoder, a pyramid-pooling query initialiser (PQI), skip
attention modules (SAM) that let decoder queries attend to encoder features in windows, and a bin-centre
predictor (BCP) whose adaptive bins turn per-pixel softmax scores into metric depth.

Our implementation, state_dict-compatible with the authors' official checkpoints (``nyu.pth``/``kitti.pth``: a
dict whose ``"model"`` is a ``DataParallel`` state_dict; the ``module.`` prefix is stripped on load). Facts the
key names alone do not fix, from the official architecture:

* every PQI branch uses GroupNorm(256 groups) (the official code switches to GN for the 1x1 pool and never back);
  the bottleneck uses BatchNorm; both convolutions are bias-free and followed by ReLU;
* a SAM's ``proj`` convolution is built but never used in the forward pass (its weights are in the checkpoint);
* the depth head predicts at 1/4 of the input and upsamples x4 bilinearly; the network needs ``H, W`` divisible
  by 32 (PixelShuffle between SAMs doubles the grid exactly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from depthscope.errors import InputError
from depthscope.models.base import DepthModel, EvalDefaults, InputCrop, Preprocessing
from depthscope.models.registry import ModelConfig, register_model
from depthscope.models.swin import (
    Mlp,
    SwinTransformer,
    WindowAttention,
    WindowGeometry,
    pad_to_windows,
    window_partition,
    window_reverse,
)
from depthscope.models.weights import WeightSource, load_registered


@dataclass(frozen=True)
class PixelFormerConfig:
    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]


PIXELFORMER_CONFIGS = {
    "tiny": PixelFormerConfig(96, (2, 2, 6, 2), (3, 6, 12, 24)),
    "base": PixelFormerConfig(128, (2, 2, 18, 2), (4, 8, 16, 32)),
    "large": PixelFormerConfig(192, (2, 2, 18, 2), (6, 12, 24, 48)),
}
SAM_DIMS = (128, 256, 512, 1024)
SAM_HEADS = (4, 8, 16, 32)
QUERY_DIM = 512  # PQI output channels; also the value width entering sam4


class WindowCrossAttention(WindowAttention):
    """Queries from the decoder, keys and values from the encoder, inside the same windows."""

    def __init__(self, dim: int, heads: int, ws: int) -> None:
        super().__init__(dim, heads, ws)
        self.kv = nn.Linear(dim, dim * 2)
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(e).chunk(2, dim=-1)
        return self.proj(self.attend(self.q(x), k, v, None))


class SAMBlock(nn.Module):
    """Window cross-attention (queries ``x`` attend to encoder tokens ``e``) and an MLP, with residuals on ``x``."""

    def __init__(self, dim: int, heads: int, ws: int) -> None:
        super().__init__()
        self.window = ws
        self.norm1 = nn.LayerNorm(dim)
        self.normv = nn.LayerNorm(dim)
        self.attn = WindowCrossAttention(dim, heads, ws)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, e: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, length, c = x.shape
        ws = self.window
        xw = pad_to_windows(self.norm1(x).view(b, h, w, c), ws)
        ew = pad_to_windows(self.normv(e).view(b, h, w, c), ws)
        hp, wp = xw.shape[1:3]
        self.attn.window_geometry = WindowGeometry((h, w), (hp, wp), ws, 0)
        y = window_reverse(self.attn(window_partition(xw, ws), window_partition(ew, ws)), ws, hp, wp)
        x = x + y[:, :h, :w].reshape(b, length, c)
        return x + self.mlp(self.norm2(x))


class SAM(nn.Module):
    """Skip attention module: ``out = norm(SAMBlock(q, e)) + e + q`` after projecting both to ``dim`` channels."""

    def __init__(self, enc_dim: int, dim: int, query_dim: int, heads: int, ws: int = 7) -> None:
        super().__init__()
        self.proj_e = nn.Conv2d(enc_dim, dim, 3, padding=1) if enc_dim != dim else None
        self.proj_q = nn.Conv2d(query_dim, dim, 3, padding=1) if query_dim != dim else None
        self.proj = nn.Conv2d(dim, dim, 3, padding=1)  # in the checkpoint, unused by the official forward
        self.sam_block = SAMBlock(dim, heads, ws)
        self.norm_sam = nn.LayerNorm(dim)

    def forward(self, e: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        if self.proj_q is not None:
            q = self.proj_q(q)
        if self.proj_e is not None:
            e = self.proj_e(e)
        b, c, h, w = q.shape
        out = self.sam_block(q.flatten(2).transpose(1, 2), e.flatten(2).transpose(1, 2), h, w)
        out = self.norm_sam(out).view(b, h, w, c).permute(0, 3, 1, 2)
        return out + e + q


class ConvNormReLU(nn.Sequential):
    """Bias-free conv, then GroupNorm (``gn``) or BatchNorm (``bn``), then ReLU (mmcv's ConvModule layout)."""

    def __init__(self, cin: int, cout: int, k: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.add_module(norm, nn.GroupNorm(256, cout) if norm == "gn" else nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)


class PyramidQueryInit(nn.Module):
    """PQI: pyramid pooling (scales 1, 2, 3, 6) over the deepest encoder feature, concatenated and fused by a 3x3
    conv into the initial decoder queries (state_dict keys ``psp_modules``/``bottleneck`` as in the checkpoint)."""

    def __init__(self, cin: int, dim: int = QUERY_DIM, scales: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvNormReLU(cin, dim, 1, "gn")) for s in scales
        )
        self.bottleneck = ConvNormReLU(cin + len(scales) * dim, dim, 3, "bn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(m(x), size=size, mode="bilinear", align_corners=False) for m in self.psp_modules]
        return self.bottleneck(torch.cat([x, *pooled], dim=1))


class BinCentres(nn.Module):
    """BCP: global-average the queries, MLP, softmax -> 256 adaptive bin widths over ``[min, max]`` metres;
    returns the bin centres ``(B, 256, 1, 1)``."""

    def __init__(self, min_depth: float, max_depth: float, dim: int = QUERY_DIM, bins: int = 256) -> None:
        super().__init__()
        self.min_depth, self.max_depth = min_depth, max_depth
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, bins)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        widths = self.fc2(self.act(self.fc1(q.flatten(2).mean(dim=2)))).softmax(dim=1)
        widths = F.pad((self.max_depth - self.min_depth) * widths, (1, 0), value=self.min_depth)
        edges = widths.cumsum(dim=1)
        return (0.5 * (edges[:, :-1] + edges[:, 1:]))[..., None, None]


class DepthHead(nn.Module):
    """Per-pixel softmax over the bins, expectation of the bin centres, x4 bilinear upsampling (metres)."""

    def __init__(self, dim: int, bins: int = 256) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, bins, 3, padding=1)

    def forward(self, x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        depth = (self.conv1(x).softmax(dim=1) * centres).sum(dim=1, keepdim=True)
        return F.interpolate(depth, scale_factor=4, mode="bilinear", align_corners=False)


class PixelFormer(nn.Module):
    """PixelFormer network: ImageNet-normalised RGB ``(B,3,H,W)`` -> depth in metres ``(B,1,H,W)``."""

    def __init__(self, version: str = "large07", min_depth: float = 0.1, max_depth: float = 10.0) -> None:
        super().__init__()
        size, window = version[:-2], int(version[-2:])
        if size not in PIXELFORMER_CONFIGS:
            raise InputError(f"PixelFormer version {version!r}: size must be one of {sorted(PIXELFORMER_CONFIGS)}")
        cfg = PIXELFORMER_CONFIGS[size]
        self.version = version
        self.backbone = SwinTransformer(cfg.embed_dim, cfg.depths, cfg.heads, window)
        enc = self.backbone.num_features
        queries = (QUERY_DIM // 8, QUERY_DIM // 4, QUERY_DIM // 2, QUERY_DIM)  # after each PixelShuffle(2)
        for i in range(4):
            self.add_module(f"sam{i + 1}", SAM(enc[i], SAM_DIMS[i], queries[i], SAM_HEADS[i], ws=7))
        self.decoder = PyramidQueryInit(enc[3])
        self.disp_head1 = DepthHead(SAM_DIMS[0])
        self.bcp = BinCentres(min_depth, max_depth)

    def sams(self) -> list[SAM]:
        """The skip attention modules, deepest first (the order the decoder runs them)."""
        return [self.sam4, self.sam3, self.sam2, self.sam1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise InputError(f"PixelFormer needs an input size divisible by 32, got {tuple(x.shape[-2:])}")
        enc = self.backbone(x)
        q4 = self.decoder(enc[3])
        q = q4
        for i, sam in zip((3, 2, 1, 0), self.sams(), strict=True):
            q = sam(enc[i], q)
            if i:
                q = F.pixel_shuffle(q, 2)
        return self.disp_head1(q, self.bcp(q4))


# ---------------------------------------------------------------------------------------------------------------
# Registered models. The official checkpoints are Google-Drive files, so there is no direct URL to download from:
# the error for a missing file says where to put it and where it comes from.
# ---------------------------------------------------------------------------------------------------------------

PIXELFORMER_ORIGIN = (
    "the official checkpoints (nyu.pth / kitti.pth) are linked from https://github.com/ashutosh1807/PixelFormer "
    "(Google Drive folder 1Feo67jEbccqa-HojTHG7ljTXOW2yuX-X)"
)
PIXELFORMER_NYU = Preprocessing(input_size=(480, 640))
PIXELFORMER_KITTI = Preprocessing(input_size=(352, 1216), crop=InputCrop(352, 1216, "bottom"))
KITTI_EVAL = EvalDefaults(1e-3, 80.0, "garg", "kitti")
GRADCAM_LAYER = "decoder"  # pyramid-pooling query initialisation on the last Swin stage: a (B, C, H/32, W/32) map


def build_pixelformer(
    config: ModelConfig, weights: str | os.PathLike | None = None, pretrained: bool = True
) -> DepthModel:
    """PixelFormer ``config.arch`` (e.g. ``large07``) with weights from ``weights`` or the registered file (if
    ``pretrained``)."""
    net = PixelFormer(config.arch, max_depth=config.eval.max_depth)
    return DepthModel(net, config.info(load_registered(net, config.weights, weights, pretrained)))


for _name, _pp, _eval, _file, _what in (
    ("pixelformer-large07-nyu", PIXELFORMER_NYU, EvalDefaults(), "nyu.pth", "NYU: 480x640 input"),
    ("pixelformer-large07-kitti", PIXELFORMER_KITTI, KITTI_EVAL, "kitti.pth", "KITTI: KB crop 352x1216"),
):
    register_model(
        ModelConfig(
            _name,
            _pp,
            _eval,
            WeightSource(f"pixelformer/{_file}", origin=PIXELFORMER_ORIGIN),
            GRADCAM_LAYER,
            "large07",
            f"PixelFormer-large (Swin-L, window 7) trained on {_what}, ImageNet normalisation, metres",
        )
    )(build_pixelformer)
for _size in PIXELFORMER_CONFIGS:
    for _window in (7, 12):
        if (_size, _window) != ("large", 7):
            _arch = f"{_size}{_window:02d}"
            register_model(
                ModelConfig(
                    f"pixelformer-{_arch}",
                    PIXELFORMER_NYU,
                    EvalDefaults(),
                    None,
                    GRADCAM_LAYER,
                    _arch,
                    f"PixelFormer-{_size}, window {_window}, NYU conventions; no published weights",
                )
            )(build_pixelformer)
