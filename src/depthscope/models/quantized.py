"""int8 post-training static quantisation on the CPU (x86/fbgemm kernels), convolutions included.

FX graph mode: batch norms are folded into their convolutions, every convolution (depthwise and transposed too)
and the skip additions run in int8 with per-channel weights; activation ranges come from histogram observers fed
calibration images. Modules listed in ``keep_float`` stay fp32, and a model's attention transformers stay fp32
(their token reshapes are not traceable; LayerNorm, softmax and matmuls are a small share of the MACs).

METER keeps ``decoder.ups_block_3`` in float: it concatenates a decoder map with the 1/4-resolution encoder skip,
whose ranges differ so much that one int8 scale for both made the depth 19 % wrong (mean relative difference to
fp32 on NYU images), against 2 % with that block in float (measured when this was written).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from depthscope.errors import CheckpointError
from depthscope.models.base import source_type
from depthscope.models.meter import METER, Transformer

KEEP_FLOAT: dict[type, tuple[str, ...]] = {METER: ("decoder.ups_block_3",)}
FLOAT_LEAVES: tuple[type, ...] = (Transformer,)  # run as whole fp32 modules, not traced
BACKEND = "x86"


def prepare_int8(net: nn.Module, example: torch.Tensor, keep_float: Sequence[str] | None = None) -> nn.Module:
    """A copy of ``net`` (eval) with observers inserted; ``keep_float`` defaults to :data:`KEEP_FLOAT`."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = BACKEND
    qmap = get_default_qconfig_mapping(BACKEND)
    for name in KEEP_FLOAT.get(source_type(net), ()) if keep_float is None else keep_float:
        qmap.set_module_name(name, None)
    custom = PrepareCustomConfig().set_non_traceable_module_classes(list(FLOAT_LEAVES))
    observed = prepare_fx(copy.deepcopy(net).eval(), qmap, example_inputs=(example,), prepare_custom_config=custom)
    observed.meta["source_type"] = source_type(net)  # which Attention Rollout rule applies (kept by deepcopy)
    return observed


@torch.no_grad()
def calibrate(observed: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Run calibration batches (network inputs) through the observed model; return the number of images."""
    n = 0
    for x in batches:
        observed(x)
        n += x.shape[0]
    return n


def convert_int8(observed: nn.Module) -> nn.Module:
    """The int8 model from a calibrated observed model."""
    from torch.ao.quantization.quantize_fx import convert_fx

    torch.backends.quantized.engine = BACKEND
    converted = convert_fx(observed).eval()
    converted.meta["source_type"] = source_type(observed)
    return converted


# How an int8 checkpoint stores a quantised tensor ``k``: ``k`` holds its int8 values, ``k + SCALES``,
# ``k + ZERO_POINTS`` its quantisation (per channel along ``k + AXIS``, or one scale per tensor).
SCALES, ZERO_POINTS, AXIS = ".__int8_scales", ".__int8_zero_points", ".__int8_axis"
PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)


def packed(t: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy of ``t``: what safetensors stores (it refuses strided views, e.g. the channels-last
    weights the x86 int8 kernels keep, and a copy never aliases another entry)."""
    return t.detach().cpu().clone(memory_format=torch.contiguous_format)


def int8_state(converted: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors inference needs of a converted int8 network, as plain tensors (safetensors stores no quantised
    dtype): int8 weights with their scales and zero points, float biases and the graph's activation scales. No
    calibration histograms, no float copy of the weights."""
    out: dict[str, torch.Tensor] = {}
    for k, v in converted.state_dict().items():
        if v is None:  # a convolution without bias
            continue
        if v.is_quantized:
            out[k] = packed(v.int_repr())
            if v.qscheme() in PER_CHANNEL:
                out[k + SCALES] = packed(v.q_per_channel_scales())
                out[k + ZERO_POINTS] = packed(v.q_per_channel_zero_points())
                out[k + AXIS] = torch.tensor(v.q_per_channel_axis())
            else:
                out[k + SCALES] = torch.tensor([v.q_scale()], dtype=torch.float64)
                out[k + ZERO_POINTS] = torch.tensor([v.q_zero_point()])
        else:
            out[k] = packed(v)
    return out


def int8_skeleton(net: nn.Module, example: torch.Tensor) -> nn.Module:
    """The converted int8 network of ``net``'s structure, with placeholder quantisation: what
    :func:`load_int8_state` fills from a checkpoint (no calibration runs)."""
    with warnings.catch_warnings():  # uncalibrated observers warn and give placeholder scales, replaced on load
        warnings.simplefilter("ignore", UserWarning)
        return convert_int8(prepare_int8(net, example))


def load_int8_state(converted: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load :func:`int8_state` tensors into :func:`int8_skeleton`; a mismatch names the keys."""
    own = converted.state_dict()
    want = {k for k, v in own.items() if v is not None}
    have = {k for k in state if not k.endswith((SCALES, ZERO_POINTS, AXIS))}
    if want != have:
        missing, unexpected = sorted(want - have)[:8], sorted(have - want)[:8]
        raise CheckpointError(f"int8 checkpoint {origin} does not match the network: missing keys "
                              f"{', '.join(missing) or 'none'}; unexpected keys {', '.join(unexpected) or 'none'}")  # fmt: skip
    full: dict[str, torch.Tensor | None] = {k: None for k, v in own.items() if v is None}
    for k in have:
        ref, v = own[k], state[k]
        if ref.is_quantized:
            if ref.qscheme() in PER_CHANNEL:
                axis = int(state[k + AXIS])
                v = torch._make_per_channel_quantized_tensor(v, state[k + SCALES], state[k + ZERO_POINTS], axis)
            else:
                v = torch._make_per_tensor_quantized_tensor(v, float(state[k + SCALES]), int(state[k + ZERO_POINTS]))
        if tuple(v.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"int8 checkpoint {origin}: {k} is {tuple(v.shape)}, the network has {tuple(ref.shape)}"
            )
        full[k] = v
    converted.load_state_dict(full, strict=True)
