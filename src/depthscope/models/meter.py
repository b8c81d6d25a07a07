"""METER (Papa et al.): a MobileViT encoder and a light upsampling decoder for monocular depth.

Our implementation, state_dict-compatible with the authors' checkpoints (same module names and shapes).
Facts that the shapes alone do not fix, checked against the real METER-XXS weights (see the tests):

* the authors' "separable" 3x3 convolution is a *full* 3x3 convolution (groups=1) followed by a 1x1;
* MobileNetV2 and transformer MLP activations are ReLU;
* the decoder's skips are the outputs of ``mv2[1]``, ``mv2[4]`` and ``mv2[5]`` (before the MobileViT blocks);
  only its separable convolutions are followed by ReLU, and the output is 1/4 of the input resolution;
* inside a MobileViT block the feature map is cut into 2x2 patches and the tokens at the same position
  inside their patch form one group: attention runs over the ``h/2 * w/2`` tokens of each of the 4 groups.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from depthscope.models.base import DepthModel, EvalDefaults, InputCrop, Preprocessing
from depthscope.models.registry import ModelConfig, register_model
from depthscope.models.weights import WeightSource, load_registered


@dataclass(frozen=True)
class MeterConfig:
    """Widths of one METER size. ``channels`` follows the authors' 11-entry MobileViT channel list."""

    dims: tuple[int, int, int]
    channels: tuple[int, ...]
    expansion: int
    decoder_width: int
    mlp_ratios: tuple[int, int, int] = (2, 4, 4)
    heads: int = 4
    dim_head: int = 8
    patch: int = 2


METER_CONFIGS: dict[str, MeterConfig] = {
    "xxs": MeterConfig((64, 80, 96), (16, 16, 24, 24, 48, 48, 64, 64, 80, 80, 160), 2, 64),
    "xs": MeterConfig((96, 120, 144), (16, 32, 48, 48, 64, 64, 80, 80, 96, 96, 192), 4, 128),
    "s": MeterConfig((144, 192, 240), (16, 32, 64, 64, 96, 96, 128, 128, 160, 160, 320), 4, 128),
}


class SeparableConv2d(nn.Module):
    """The authors' 'separable' conv: a full kxk conv (``depthwise``, groups=1) then a 1x1 (``pointwise``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.pointwise = nn.Conv2d(cout, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _sep_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(SeparableConv2d(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU())


def _conv1x1_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise (stride), 1x1 project; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.use_residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y


class TokenMixer(nn.Module):
    """A transformer's token mixer over ``(B, groups, N, dim)``, called with the feature grid ``(h, w)``: what
    Attention Rollout reads from it (when ``record`` is set, the attention or attention-equivalent matrix of the
    last call in ``last_attention`` ``(B, groups, heads, N, N)``, and ``token_grid``, the feature (h, w) of that
    call) and the output projection ``to_out`` that every mixer shares."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))
        self.record = False
        self.last_attention: torch.Tensor | None = None
        self.token_grid: tuple[int, int] | None = None


class Attention(TokenMixer):
    """Multi-head self-attention over tokens ``(B, groups, N, dim)``; its softmax probabilities are what
    ``last_attention`` keeps when ``record`` is set (nothing is kept otherwise)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        inner = heads * dim_head
        super().__init__(dim, inner)
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)

    def attention_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (softmax attention ``(B,P,h,N,N)``, values ``(B,P,h,N,d)``)."""
        b, p, n, _ = x.shape
        q, k, v = (t.reshape(b, p, n, self.heads, -1).transpose(2, 3) for t in self.to_qkv(x).chunk(3, dim=-1))
        return torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1), v

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        self.token_grid = grid
        attn, v = self.attention_probs(x)
        if self.record:
            self.last_attention = attn.detach()
        out = (attn @ v).transpose(2, 3).flatten(3)
        return self.to_out(out)


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor, *args: object) -> torch.Tensor:
        return self.fn(self.norm(x), *args)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """Pre-norm transformer layers (token mixer then MLP, each residual). ``grid`` is the feature map's (h, w),
    which a mixer needs to place its tokens (attention records it for rollout; pooling and spatial reduction
    use it)."""

    def __init__(self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(dim, Attention(dim, heads, dim_head)), PreNorm(dim, FeedForward(dim, mlp_dim))])
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x, grid) + x
            x = ff(x) + x
        return x


def patches_to_tokens(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, D, H, W)`` -> ``(B, patch*patch, H/patch * W/patch, D)``.

    Group ``g = i*patch + j`` holds the pixels at offset ``(i, j)`` inside every patch; token ``n = r*(W/patch)+c``
    of a group is the patch at patch-row ``r``, patch-column ``c``, i.e. pixel ``(r*patch+i, c*patch+j)``.
    """
    b, d, h, w = x.shape
    x = x.reshape(b, d, h // patch, patch, w // patch, patch)
    return x.permute(0, 3, 5, 2, 4, 1).reshape(b, patch * patch, (h // patch) * (w // patch), d)


def tokens_to_patches(x: torch.Tensor, patch: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`patches_to_tokens` for a ``(H, W)`` map."""
    b, _, _, d = x.shape
    x = x.reshape(b, patch, patch, h // patch, w // patch, d)
    return x.permute(0, 5, 3, 1, 4, 2).reshape(b, d, h, w)


class MobileViTBlock(nn.Module):
    """Local conv, global attention over 2x2-patch token groups, fusion with the block input."""

    def __init__(self, dim: int, channels: int, mlp_dim: int, heads: int, dim_head: int, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.conv1 = _sep_bn_relu(channels, channels)
        self.conv2 = _conv1x1_bn_relu(channels, dim)
        self.transformer = Transformer(dim, 1, heads, dim_head, mlp_dim)
        self.conv3 = _conv1x1_bn_relu(dim, channels)
        self.conv4 = _sep_bn_relu(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _check_patchable(self.conv2(self.conv1(x)), self.patch)
        h, w = y.shape[-2:]
        y = tokens_to_patches(self.transformer(patches_to_tokens(y, self.patch), (h, w)), self.patch, h, w)
        return self.conv4(torch.cat([self.conv3(y), x], dim=1))


@torch.fx.wrap
def _check_patchable(y: torch.Tensor, patch: int) -> torch.Tensor:
    """``y`` unchanged if its size is divisible by ``patch`` (one graph node when traced, for int8 quantisation)."""
    h, w = y.shape[-2:]
    if h % patch or w % patch:
        raise ValueError(f"MobileViT block input {h}x{w} is not divisible by the patch size {patch}")
    return y


class MobileViTEncoder(nn.Module):
    """MobileViT backbone returning the final features and the decoder skips (1/2, 1/4, 1/8, 1/16)."""

    def __init__(self, cfg: MeterConfig) -> None:
        super().__init__()
        c, e = cfg.channels, cfg.expansion
        self.conv1 = _sep_bn_relu(3, c[0], stride=2)
        self.mv2 = nn.ModuleList(
            [
                InvertedResidual(c[0], c[1], 1, e),
                InvertedResidual(c[1], c[2], 2, e),
                InvertedResidual(c[2], c[3], 1, e),
                InvertedResidual(c[2], c[3], 1, e),
                InvertedResidual(c[3], c[4], 2, e),
                InvertedResidual(c[5], c[6], 2, e),
                InvertedResidual(c[7], c[8], 2, e),
            ]
        )
        self.mvit = nn.ModuleList(
            MobileViTBlock(dim, ch, dim * ratio, cfg.heads, cfg.dim_head, cfg.patch)
            for dim, ch, ratio in zip(cfg.dims, (c[5], c[7], c[9]), cfg.mlp_ratios, strict=True)
        )
        self.conv2 = _conv1x1_bn_relu(c[-2], c[-1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y0 = self.conv1(x)
        y1 = self.mv2[1](self.mv2[0](y0))
        x = self.mv2[3](self.mv2[2](y1))
        y2 = self.mv2[4](x)
        y3 = self.mv2[5](self.mvit[0](y2))
        x = self.mvit[2](self.mv2[6](self.mvit[1](y3)))
        return self.conv2(x), [y0, y1, y2, y3]


@torch.fx.wrap
def _pad_like(skip: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``skip`` to ``ref``'s spatial size, first on the left/top, then right/bottom (authors' rule)."""
    dh, dw = ref.shape[-2] - skip.shape[-2], ref.shape[-1] - skip.shape[-1]
    if dh < 0 or dw < 0:
        raise ValueError(f"decoder skip {tuple(skip.shape[-2:])} is larger than {tuple(ref.shape[-2:])}")
    return F.pad(skip, ((dw + 1) // 2, dw // 2, (dh + 1) // 2, dh // 2)) if dh or dw else skip


class UpsampleBlock(nn.Module):
    """Transposed conv (x2), concatenation with the encoder skip, separable conv + ReLU."""

    def __init__(self, cin: int, cout: int, skip_channels: int) -> None:
        super().__init__()
        self.conv2d_transpose = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False)
        self.end_up_layer = nn.Sequential(SeparableConv2d(cout + skip_channels, cout), nn.ReLU())

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_transpose(x)
        return self.end_up_layer(torch.cat([x, _pad_like(skip, x)], dim=1))


class MeterDecoder(nn.Module):
    def __init__(self, cfg: MeterConfig) -> None:
        super().__init__()
        c, w = cfg.channels, cfg.decoder_width
        self.conv2d_in = nn.Conv2d(c[-1], w, 1, bias=False)
        self.ups_block_1 = UpsampleBlock(w, w // 2, c[6])
        self.ups_block_2 = UpsampleBlock(w // 2, w // 4, c[4])
        self.ups_block_3 = UpsampleBlock(w // 4, w // 8, c[2])
        self.conv2d_out = nn.Conv2d(w // 8, 1, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = self.ups_block_1(self.conv2d_in(x), skips[3])
        x = self.ups_block_2(x, skips[2])
        x = self.ups_block_3(x, skips[1])
        return self.conv2d_out(x)


class METER(nn.Module):
    """METER network: normalised RGB ``(B,3,H,W)`` -> raw depth ``(B,1,H/4,W/4)`` in the checkpoint's unit."""

    def __init__(self, size: str = "xxs") -> None:
        super().__init__()
        self.size = size
        self.config = METER_CONFIGS[size]
        self.encoder = MobileViTEncoder(self.config)
        self.decoder = MeterDecoder(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, skips = self.encoder(x)
        return self.decoder(feats, skips)


# ---------------------------------------------------------------------------------------------------------------
# Registered METER models. The NYU and KITTI checkpoints differ only in data: input size, crop, normalisation,
# output unit and evaluation protocol (verified facts in shared/weights/meter/README.md).
# ---------------------------------------------------------------------------------------------------------------

_METER_URL = "https://github.com/lorenzopapa5/METER/raw/0f9a49a/models/"
NYU_PREPROCESSING = Preprocessing(input_size=(192, 256), unit="cm")
KITTI_PREPROCESSING = Preprocessing(
    input_size=(192, 636), mean=None, std=None, unit="dm", crop=InputCrop(352, 1216, "bottom")
)
NYU_EVAL = EvalDefaults(1e-3, 10.0, "eigen", "nyu")
KITTI_EVAL = EvalDefaults(1e-3, 80.0, "garg", "kitti")
GRADCAM_LAYER = "encoder.conv2"  # the encoder's last convolution (stride 32), before the decoder


@register_model(
    ModelConfig(
        "meter-xxs-nyu",
        NYU_PREPROCESSING,
        NYU_EVAL,
        WeightSource(
            "meter_xxs_nyu.pth",
            _METER_URL + "build_model_best_nyu_xxs",
            "327cddf3bfc85f4a13b8d18d2f13d8e40cdeb022ea397995c409ef1569bcbb53",
        ),
        GRADCAM_LAYER,
        "xxs",
        "METER-XXS trained on NYU Depth V2 (input 192x256, ImageNet normalisation, output in cm)",
    )
)
@register_model(
    ModelConfig(
        "meter-xxs-kitti",
        KITTI_PREPROCESSING,
        KITTI_EVAL,
        WeightSource(
            "meter_xxs_kitti.pth",
            _METER_URL + "build_model_best_kitti_xxs",
            "e55544ae36f9ad74237017fd5f8e761db4b258dbed44623c71ce305d44488bea",
        ),
        GRADCAM_LAYER,
        "xxs",
        "METER-XXS trained on KITTI (KB crop resized to 192x636, no normalisation, output in dm)",
    )
)
@register_model(
    ModelConfig(
        "meter-xs",
        NYU_PREPROCESSING,
        NYU_EVAL,
        None,
        GRADCAM_LAYER,
        "xs",
        "METER-XS, NYU conventions; no published weights",
    )
)
@register_model(
    ModelConfig(
        "meter-s",
        NYU_PREPROCESSING,
        NYU_EVAL,
        None,
        GRADCAM_LAYER,
        "s",
        "METER-S, NYU conventions; no published weights",
    )
)
def build_meter(config: ModelConfig, weights: str | os.PathLike | None = None, pretrained: bool = True) -> DepthModel:
    """METER of size ``config.arch`` with weights from ``weights`` or the registered source (if ``pretrained``).
    The NYU and KITTI checkpoints differ only in data: input size, crop, normalisation, output unit and evaluation
    protocol (verified facts in shared/weights/meter/README.md)."""
    net = METER(config.arch)
    return DepthModel(net, config.info(load_registered(net, config.weights, weights, pretrained)))
