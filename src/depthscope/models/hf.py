"""Hugging Face ``transformers`` depth models (DPT, Depth Anything V2, GLPN, ZoeDepth...) behind the one interface.

Optional: ``pip install depthscope[hf]``. ``load_model("hf:<directory or hub name>")`` loads the model with eager
attention (so Attention Rollout can read the attention probabilities) and reads ``preprocessor_config.json`` for
the network input size, normalisation and resizing rule. What the output means comes from the config:

* ``depth_anything`` with ``depth_estimation_type="metric"``, ``glpn`` and ``zoedepth``: metric depth in metres;
* ``depth_anything`` (relative) and ``dpt`` (MiDaS-style): affine-invariant **disparity** (inverse depth up to
  scale and shift), marked ``output="disparity"``; ``evaluate`` aligns such predictions to the ground truth.

The network input size is fixed at load time: aspect-keeping processors (DPT, Depth Anything) are resolved for a
``reference`` image size, 480x640 (NYU) by default, exactly as the processor would resize such an image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthscope.errors import CheckpointError, InputError
from depthscope.models.base import DepthModel, EvalDefaults, ModelInfo, Preprocessing

HF_PREFIX = "hf:"
METRIC_TYPES = {"glpn", "zoedepth"}


class HFDepthNet(nn.Module):
    """A ``transformers`` ``...ForDepthEstimation`` model as a network: normalised ``(B,3,h,w)`` ->
    ``(B,1,h',w')``. With ``record`` set, one forward also keeps every layer's attention probabilities
    (``last_attention``: a list of ``(B, heads, n, n)``, first layer first) for Attention Rollout."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.record = False
        self.last_attention: list[torch.Tensor] | None = None

    @property
    def patch_size(self) -> int | None:
        cfg = self.model.config
        backbone = getattr(cfg, "backbone_config", None)
        return getattr(backbone, "patch_size", None) or getattr(cfg, "patch_size", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x, output_attentions=self.record)
        if self.record:
            attns = getattr(out, "attentions", None)
            if not attns:
                raise InputError(f"{type(self.model).__name__} returned no attention probabilities")
            self.last_attention = [a.detach() for a in attns]
        depth = out.predicted_depth
        return depth.unsqueeze(1) if depth.dim() == 3 else depth


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise InputError("Hugging Face models need transformers: pip install 'depthscope[hf]'") from None
    return transformers


def read_preprocessor_config(source: str, local_files_only: bool = False) -> dict[str, Any]:
    """``preprocessor_config.json`` of a local directory or a hub model (empty if it has none; a hub model's from
    the local cache only with ``local_files_only``)."""
    if Path(source).is_dir():
        p = Path(source) / "preprocessor_config.json"
        return json.loads(p.read_text()) if p.is_file() else {}
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(
            Path(hf_hub_download(source, "preprocessor_config.json", local_files_only=local_files_only)).read_text()
        )
    except Exception:  # offline, or the repository has no processor config: fall back to the model's defaults
        return {}


def read_model_config(source: str, local_files_only: bool = False) -> dict[str, Any]:
    """``config.json`` of a local directory or a hub model (a hub model's from the local cache only with
    ``local_files_only``), as plain data; one clear error when it cannot be read."""
    try:
        if Path(source).expanduser().is_dir():
            path = Path(source).expanduser() / "config.json"
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, "config.json", local_files_only=local_files_only))
        config = json.loads(path.read_text())
    except Exception as e:  # missing, offline, malformed JSON
        raise CheckpointError(f"cannot read the config.json of Hugging Face model {source!r}: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"the config.json of Hugging Face model {source!r} is not a JSON object")
    return config


def check_no_remote_code(source: str, config: dict[str, Any]) -> None:
    """One clear error for a model whose config asks for code shipped with it (``auto_map``: a ``.py`` file run by
    ``trust_remote_code``): depthscope never runs a model's own code, and never asks whether to."""
    auto_map = config.get("auto_map")
    if auto_map:
        files = sorted({str(v).split(".")[0] + ".py" for v in (auto_map.values() if isinstance(auto_map, dict)
                                                               else [auto_map])})  # fmt: skip
        raise CheckpointError(
            f"Hugging Face model {source!r} needs its own code ({', '.join(files)}, named by auto_map in its "
            "config.json), which depthscope never runs; use a model that transformers implements, or wrap yours in "
            "Python: depthscope.wrap(your_module, ...)"
        )


def _nearest_multiple(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def network_input_size(proc: dict[str, Any], reference: tuple[int, int]) -> tuple[int, int]:
    """The size the model's image processor gives an image of size ``reference`` (H, W)."""
    h, w = reference
    if "size_divisor" in proc and "size" not in proc:  # GLPN: round down to a multiple of the divisor
        d = int(proc["size_divisor"])
        return max(d, h // d * d), max(d, w // d * d)
    size = proc.get("size") or {}
    th, tw = size.get("height", h), size.get("width", w)
    multiple = int(proc.get("ensure_multiple_of", 1))
    sh, sw = th / h, tw / w
    if proc.get("keep_aspect_ratio", False):  # scale as little as possible, keep the aspect ratio
        sh = sw = sw if abs(1 - sw) < abs(1 - sh) else sh
    return _nearest_multiple(sh * h, multiple), _nearest_multiple(sw * w, multiple)


def _check_loading_info(source: str, info: dict[str, Any]) -> None:
    """Weights that do not fit the config (missing, unexpected or of another shape) are one error naming them:
    transformers would load the rest and leave those layers random."""
    missing, unexpected = list(info.get("missing_keys", [])), list(info.get("unexpected_keys", []))
    shapes = [str(m[0]) if isinstance(m, tuple | list) else str(m) for m in info.get("mismatched_keys", [])]
    if missing or unexpected or shapes:

        def show(items: list[str]) -> str:
            items = sorted(items)
            return ", ".join(items[:5]) + (f" ... ({len(items)} in all)" if len(items) > 5 else "") or "none"

        raise CheckpointError(
            f"Hugging Face model {source!r}: its weights do not match its config.json: missing keys: {show(missing)};"
            f" unexpected keys: {show(unexpected)}; shape mismatches: {show(shapes)}"
        )


def output_kind(config: Any) -> str:
    """``depth`` (metric, metres) or ``disparity`` (affine-invariant inverse depth) from a model config."""
    if config.model_type in METRIC_TYPES or getattr(config, "depth_estimation_type", None) == "metric":
        return "depth"
    return "disparity"


def load_hf(
    source: str,
    pretrained: bool = True,
    output: str | None = None,
    reference: tuple[int, int] = (480, 640),
    local_files_only: bool = False,
) -> DepthModel:
    """Load a ``transformers`` depth model from a local directory or hub name (``pretrained=False``: its config
    with random weights). ``output`` overrides what the raw output means (``depth``/``disparity``/``relative``);
    ``local_files_only``: a hub model from the local cache only, never downloaded (an optimised checkpoint's
    base: a file's metadata does not make depthscope fetch anything)."""
    tf = _import_transformers()
    looks_local = source.startswith(("/", ".", "~")) or source.count("/") > 1  # a hub name is "org/name"
    if looks_local and not Path(source).expanduser().is_dir():
        raise CheckpointError(f"Hugging Face model directory {source} does not exist")
    check_no_remote_code(source, read_model_config(source, local_files_only))  # before transformers could prompt
    quiet = tf.logging.get_verbosity()
    tf.logging.set_verbosity_error()  # its load report goes to our error below, not a 60-line table on stdout
    try:
        if pretrained:
            model, info = tf.AutoModelForDepthEstimation.from_pretrained(
                source, attn_implementation="eager", local_files_only=local_files_only, trust_remote_code=False,
                output_loading_info=True,
            )  # fmt: skip
        else:
            config = tf.AutoConfig.from_pretrained(source, local_files_only=local_files_only, trust_remote_code=False)
            model = tf.AutoModelForDepthEstimation.from_config(
                config, attn_implementation="eager", trust_remote_code=False
            )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # missing file, unknown type, bad config
        reason = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot load Hugging Face depth model {source!r}: {reason}") from None
    finally:
        tf.logging.set_verbosity(quiet)
    if pretrained:
        _check_loading_info(source, info)
    proc = read_preprocessor_config(source, local_files_only)
    mean = tuple(proc["image_mean"]) if proc.get("do_normalize", "image_mean" in proc) else None
    std = tuple(proc["image_std"]) if mean is not None else None
    kind = output or output_kind(model.config)
    pp = Preprocessing(network_input_size(proc, reference), mean, std, "m", kind)  # type: ignore[arg-type]
    metric_cap = getattr(model.config, "max_depth", None) if kind == "depth" else None  # a relative model's is moot
    max_depth = float(metric_cap or 10.0)
    name = HF_PREFIX + source
    return DepthModel(
        HFDepthNet(model), ModelInfo(name, pp, EvalDefaults(max_depth=max_depth), source if pretrained else None)
    )
