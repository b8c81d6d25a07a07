"""Tiny randomly initialised Hugging Face depth models written to a directory (no download), as
``transformers`` would save a real one: config, weights and an image-processor config."""

from __future__ import annotations

import json
from pathlib import Path

import torch

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_normalize": True}


def save_tiny_depth_anything(d: Path, width: int = 32, heads: int = 2, seed: int = 0) -> Path:
    """Depth Anything (relative, DINOv2 backbone with patch 14), 4 layers of ``width`` channels and ``heads``
    heads, neck and head at half and quarter width; processor: 56 px, keep aspect, multiple of 14 (like the real
    518 px one). Returns ``d``."""
    import transformers

    backbone = transformers.Dinov2Config(
        hidden_size=width,
        num_hidden_layers=4,
        num_attention_heads=heads,
        intermediate_size=2 * width,
        image_size=56,
        patch_size=14,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    cfg = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=width,
        neck_hidden_sizes=[width // 2, width // 2, width, width],
        fusion_hidden_size=width // 2,
        head_hidden_size=width // 4,
        depth_estimation_type="relative",
    )
    torch.manual_seed(seed)
    transformers.DepthAnythingForDepthEstimation(cfg).save_pretrained(d)
    proc = {"size": {"height": 56, "width": 56}, "keep_aspect_ratio": True, "ensure_multiple_of": 14, **IMAGENET}
    (d / "preprocessor_config.json").write_text(json.dumps(proc))
    return d
