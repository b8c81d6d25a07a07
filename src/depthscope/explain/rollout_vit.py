"""Attention Rollout for ViT encoders of dense Hugging Face depth models (DPT, Depth Anything).

All layers attend globally over ``n = prefix + gh * gw`` tokens: ``prefix`` CLS/register tokens, then the
``p x p`` pixel patches in row-major order (``gh = h / p``, ``gw = w / p`` on the network input). Rollout
multiplies the layers' ``A_hat`` into ``R`` (``n x n``). A dense head has no CLS output to explain, so a target
starts on the **patch tokens of its region**: its weights are area-pooled to the patch grid (relevance 1 in
all), ``r R`` moves them to the input tokens, and each patch token's relevance is spread over its ``p x p``
pixels. Relevance that ends on the prefix tokens has no pixel and is dropped. The DPT neck also reads
intermediate layers; rollout through all layers is the usual approximation. Spatial-reduction attention (GLPN /
SegFormer: keys pooled by a ratio, so ``A`` is not square over the same tokens) has no rollout here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.explain.rollout import recording, register_rollout, rollout
from depthscope.explain.rollout_windows import spread_relevance
from depthscope.models.hf import HFDepthNet


@register_rollout(HFDepthNet)
def vit_rollout(
    model: torch.nn.Module, x: torch.Tensor, q: torch.Tensor, head_fusion: str, discard_ratio: float
) -> torch.Tensor:
    """Rollout over every attention layer of a ViT-style HF depth model (see the module docstring)."""
    net: HFDepthNet = model.net
    p = net.patch_size
    h, w = q.shape[-2:]
    with recording(model, x):
        attns = net.last_attention or []
    gh, gw = h // p if p else 0, w // p if p else 0
    n = attns[0].shape[-1] if attns else 0
    if not p or not attns or any(a.shape[-2] != a.shape[-1] for a in attns) or n < gh * gw:
        kind = model.net.model.config.model_type
        raise InputError(
            f"attention_rollout needs square self-attention over patch tokens; {kind}'s attention is not (e.g. "
            "spatial-reduction attention pools its keys), so its tokens do not map to pixels one to one"
        )
    prefix = n - gh * gw
    hat = rollout([a[0] for a in attns], head_fusion, discard_ratio)  # (n, n)
    r = F.adaptive_avg_pool2d(q[:, 0], (gh, gw)).flatten(1)
    r = r / r.sum(-1, keepdim=True).clamp_min(1e-12)
    r = F.pad(r, (prefix, 0)) @ hat  # (T, n)
    return spread_relevance(r[:, prefix:].view(-1, gh, gw), (h, w), p).unsqueeze(1)
