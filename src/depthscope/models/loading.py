"""``load_model``: one name resolves to a model, in this order: a Hugging Face model (``hf:DIR``), an optimised
checkpoint (``FILE.safetensors`` from ``depthscope optimize``), a registered name, a Python entry point
(``package.module:function``, only when the user types it)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

import torch

from depthscope.errors import CheckpointError, DepthscopeError, InputError, UnknownNameError
from depthscope.models.base import DepthModel
from depthscope.models.registry import MODELS
from depthscope.ops.quiet import trace_reason


def load_model(
    name: str,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    device: str | torch.device = "cpu",
) -> DepthModel:
    """A model ready for inference: images in [0, 1] in, metric depth in metres out, in eval mode on ``device``.

    Args:
        name: a registered name (:func:`list_models`), ``"hf:<directory or hub name>"`` (a ``transformers`` depth
            model), ``FILE.safetensors`` written by ``depthscope optimize``, or a Python entry point
            ``"package.module:function"`` returning a :class:`DepthModel` (may accept ``weights`` and
            ``pretrained``).
        weights: an explicit checkpoint file instead of the lookup (``DEPTHSCOPE_WEIGHTS``, the user cache, the
            checkpoint's public URL with a sha256 check), or a ``depthscope optimize`` checkpoint made from
            ``name`` (the way to load one made from an entry point: its metadata may not name code to run).
        pretrained: False gives random weights (enough for cost metrics).
        device: e.g. ``"cpu"`` or ``"cuda"``; ``"meta"`` builds shapes only (parameter and MAC counts), no weights.

    Returns:
        A :class:`DepthModel`.

    Example:
        >>> model = load_model("meter-xxs-nyu")
        >>> model.preprocessing.input_size, model.preprocessing.unit, model.info.weights.endswith("meter_xxs_nyu.pth")
        ((192, 256), 'cm', True)
    """
    device = check_device(device)
    if str(device) == "meta" and name.endswith(".safetensors"):
        device = "cpu"  # an optimised checkpoint is small, and its structure comes from its tensors
    if str(device) == "meta":
        with torch.device("meta"):
            return _build(name, None, False).to(device).eval()
    return _build(name, weights, pretrained).to(device).eval()


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists here; one clear error otherwise (e.g. cuda without a GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"--device {device!r} is not a torch device ({e}); e.g. cpu, cuda, cuda:1") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available here (no GPU or a CPU build of torch)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type not in ("cpu", "meta", "mps"):
        raise InputError(f"--device {device}: unsupported device type {dev.type!r}; use cpu or cuda")
    return dev


def check_published_identity(name: str, weights: str | os.PathLike) -> None:
    """An explicit checkpoint that is byte for byte another registered model's published one is refused: the
    NYU and KITTI METER checkpoints have the same shapes, so loading one into the other gives silent nonsense."""
    from depthscope.models.weights import sha256_of

    others = {c.weights.sha256: n for n in MODELS.names() if (c := MODELS.get(n).config).weights and c.weights.sha256}
    path = Path(weights)
    if not others or not path.is_file():
        return  # a missing file is reported by the weight lookup itself
    match = others.get(sha256_of(path))
    if match is not None and match != name:
        raise CheckpointError(
            f"{path} is the published checkpoint of {match}, not of {name} (same sha256); use --model {match}"
        )


def _build(name: str, weights: str | os.PathLike | None, pretrained: bool) -> DepthModel:
    if name.startswith("hf:"):
        from depthscope.models.hf import load_hf

        if weights is not None:
            raise InputError("a Hugging Face model takes its weights from its directory: --model hf:DIR")
        return load_hf(name.removeprefix("hf:"), pretrained=pretrained)
    if name.endswith(".safetensors") or str(weights).endswith(".safetensors"):  # imported only for these
        from depthscope.models.optimized import is_optimized_checkpoint, load_optimized

        if name.endswith(".safetensors"):
            if weights is not None:
                raise InputError(f"{name} is an optimised checkpoint holding its own weights; drop --weights")
            return load_optimized(name, lambda base: _registered_base(name, base))
        if is_optimized_checkpoint(weights):  # --model BASE --weights FILE optimised from BASE
            return load_optimized(weights, lambda base: _typed_base(str(weights), name, base))
    if ":" in name and name not in MODELS:
        return _call_entry_point(name, weights=weights, pretrained=pretrained)
    model = MODELS.get(name)(weights=weights, pretrained=pretrained)  # a file of other shapes fails here, by key
    if weights is not None:
        check_published_identity(name, weights)  # same shapes, another model's published weights
    return model


def _registered_base(path: str, base: str) -> DepthModel:
    """The base model an optimised checkpoint names, built without weights: a registered name, or a Hugging Face
    model ``hf:DIR_OR_HUB_NAME`` (built from its ``config.json`` alone, read from this machine, a directory or the
    Hugging Face cache, never downloaded; ``transformers`` runs no code of a model's without ``trust_remote_code``,
    which depthscope never passes). A file's metadata is data; entry points (``module:function``) run only when the
    user types them (``--model module:function --weights FILE``: :func:`_typed_base`)."""
    if isinstance(base, str) and base.startswith("hf:"):
        from depthscope.models.hf import load_hf

        try:
            return load_hf(base.removeprefix("hf:"), pretrained=False, local_files_only=True)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: the base model its recipe names, {base}: {e}") from None
    if isinstance(base, str) and ":" in base:
        raise CheckpointError(
            f"{path}: its recipe names base model {base!r}, an entry point, which a file's metadata may not run; "
            f"if you trust that code, type it: --model {base} --weights {path}"
        )
    if not isinstance(base, str) or base not in MODELS:
        raise CheckpointError(
            f"{path}: its recipe names base model {base!r}, which is neither a registered model nor a Hugging Face "
            f"one (hf:DIR); a checkpoint may only name hf:DIR or one of: {', '.join(MODELS.names())}"
        )
    return MODELS.get(base)(pretrained=False)


def _typed_base(path: str, typed: str, base: str) -> DepthModel:
    """The model the user typed (``--model NAME --weights FILE``) as the base of an optimised checkpoint, which
    must name that same model: the only way a file's recipe may lead to an entry point (``module:function``)."""
    if base != typed:
        raise CheckpointError(f"{path} was optimised from {base!r}, not from {typed!r}; use --model {base}")
    if ":" in typed and typed not in MODELS:
        return _call_entry_point(typed, pretrained=False)
    return _registered_base(path, typed)


def _call_entry_point(spec: str, **kwargs: object) -> DepthModel:
    """Import ``module:function`` (the current directory is searched too, as ``python -m`` does) and call it."""
    module_name, _, attr = spec.partition(":")
    try:
        if os.getcwd() not in sys.path and importlib.util.find_spec(module_name.split(".")[0]) is None:
            sys.path.append(os.getcwd())
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownNameError(f"model entry point {spec!r}: cannot import {module_name!r} ({e})") from None
    except (Exception, SystemExit) as e:  # the module's own code failed while importing: its error, in one line
        raise InputError(f"model entry point {spec!r}: importing {module_name} raised {trace_reason(e)}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UnknownNameError(f"model entry point {spec!r}: {module_name} has no function {attr!r}")
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        accepted = {}
    try:
        model = factory(**{k: v for k, v in kwargs.items() if k in accepted})
    except DepthscopeError:
        raise
    except (Exception, SystemExit) as e:  # the user's code: its error in one line, never a traceback
        raise InputError(f"model entry point {spec!r} raised {trace_reason(e)}") from None
    if not isinstance(model, DepthModel):
        raise InputError(
            f"model entry point {spec!r} returned {type(model).__name__}, not a DepthModel; return "
            "depthscope.wrap(module, input_size=(H, W), mean=..., std=..., unit=...) so images and metres are defined"
        )
    return model
