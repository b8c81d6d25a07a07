"""Optimised-model checkpoints: one safetensors file that ``depthscope evaluate/profile/explain --model FILE`` load.

The file holds the state_dict and, in its metadata, the recipe: the ``base`` model (registered name whose
architecture and preprocessing start the chain) and the ``steps`` that changed it (``meta``/``pyra`` mixers,
``prune`` widths, ``int8`` regions and scales). Loading rebuilds the base without weights, replays each step's structural
change and loads the tensors strictly (int8: the regions re-exported, their stored scales converted).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthscope.errors import CheckpointError, DepthscopeError
from depthscope.models.base import DepthModel
from depthscope.models.channels import resize_like, resize_to_state
from depthscope.models.heads import set_head_counts
from depthscope.models.mixers import replace_attention
from depthscope.models.quantized import int8_skeleton, load_int8_state
from depthscope.models.weights import load_into
from depthscope.output.files import write_atomic
from depthscope.registry import Registry

FORMAT = "depthscope-optimized/1"


@dataclass(frozen=True)
class Structure:
    """How a recipe step changes a network: ``rebuild(net, step, state)`` before the tensors are loaded."""

    rebuild: Callable[[nn.Module, Mapping[str, Any], Mapping[str, torch.Tensor]], nn.Module]


STRUCTURES: Registry[Structure] = Registry("optimisation step")


def save_optimized(path: str | os.PathLike, net: nn.Module, base: str, steps: list[dict[str, Any]], name: str) -> Path:
    """Write ``net``'s tensors and the recipe atomically as safetensors."""
    from safetensors.torch import save

    # contiguous CPU copies (safetensors refuses strided views and aliases); an int8 network's state is its
    # regions' folded weights and scales
    state = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in net.state_dict().items()}
    meta = {"format": FORMAT, "base": base, "steps": json.dumps(steps), "name": name}
    return write_atomic(path, save(state, metadata=meta))


def _metadata(path: str | os.PathLike) -> dict[str, str]:
    """A safetensors file's metadata (empty if it has none); an unreadable file is one error naming it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except Exception as e:
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from None


def is_optimized_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file written by ``depthscope optimize`` (its metadata holds a recipe)."""
    if not str(path).endswith(".safetensors") or not Path(path).is_file():
        return False
    try:
        return _metadata(path).get("format") == FORMAT
    except CheckpointError:  # not readable as safetensors: the weight loader says why
        return False


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an optimised checkpoint; a plain state_dict file is an error saying what to do instead."""
    meta = _metadata(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a `depthscope optimize` checkpoint (no recipe in its metadata); for a plain state_dict "
            "use --model NAME --weights FILE"
        )
    try:
        recipe = {"base": meta["base"], "steps": json.loads(meta["steps"]), "name": meta["name"]}
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: malformed recipe in its metadata ({type(e).__name__}: {e})") from None
    if not isinstance(recipe["steps"], list):
        raise CheckpointError(f"{path}: malformed recipe in its metadata (steps is not a list)")
    return recipe


def load_optimized(
    path: str | os.PathLike, build_base: Callable[[str], DepthModel], device: str | torch.device = "cpu"
) -> DepthModel:
    """Rebuild the model an optimised checkpoint describes and load its tensors. ``build_base(name)`` builds the
    recipe's base model without weights; the caller (``load_model``) accepts registered names and Hugging Face
    configs on this machine only, so a file's metadata never names code to import. Every step must be one of the
    structure ops registered here."""
    from safetensors.torch import load_file

    recipe = read_recipe(path)
    unknown = [
        repr(s.get("method") if isinstance(s, dict) else s)
        for s in recipe["steps"]
        if not isinstance(s, dict) or s.get("method") not in STRUCTURES
    ]
    if unknown:
        raise CheckpointError(
            f"{path}: its recipe has steps depthscope does not write ({', '.join(unknown)}); known steps: "
            f"{', '.join(STRUCTURES.names())}"
        )
    int8 = any(s["method"] == "int8" for s in recipe["steps"])  # every step is a dict of a known method here
    if int8 and torch.device(device).type != "cpu":
        raise CheckpointError(f"{path} is an int8 model, which runs on the CPU (x86 int8 kernels); use --device cpu")
    model = build_base(recipe["base"])
    state = load_file(str(path))
    net, twin = model.net, None
    try:
        for step in recipe["steps"]:
            if step["method"] == "int8":
                twin = copy.deepcopy(net)  # the float network the int8 one computes: its params and MACs count
            net = STRUCTURES.get(step["method"]).rebuild(net, step, state)
        (load_int8_state if int8 else load_into)(net, state, str(path))
    except DepthscopeError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path}: malformed recipe step in its metadata ({type(e).__name__}: {e})") from None
    out = DepthModel(net, replace(model.info, name=recipe["name"], weights=str(path))).to(device).eval()
    if twin is not None:  # int8: count the float twin's params and MACs; no gradients
        object.__setattr__(out, "float_twin", DepthModel(twin, out.info).to(device).eval())  # not a submodule
    return out


def _replaced(net: nn.Module, kind: str, **options: int) -> nn.Module:
    replace_attention(net, kind, **options)
    return net


# The structure ops depthscope writes (``depthscope optimize``); nothing else is accepted from a file.
STRUCTURES.register("meta")(Structure(lambda net, step, state: _replaced(net, "meta", kernel=int(step["kernel"]))))
STRUCTURES.register("pyra")(Structure(lambda net, step, state: _replaced(net, "pyra", sr_ratio=int(step["sr_ratio"]))))


def _pruned(net: nn.Module, step: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> nn.Module:
    if step.get("engine") == "depgraph":  # any network: every tensor's shape from the file, groups and heads from
        # the recipe (checkpoints written before heads were pruned have no "heads": all kept); head counts first,
        # while the projections still have the shapes by which a layout recognises an attention module
        set_head_counts(net, {str(k): int(v) for k, v in dict(step.get("heads", {})).items()})
        return resize_to_state(net, state, {str(k): int(v) for k, v in dict(step.get("groups", {})).items()})
    return resize_like(net, state)  # METER's channel groups


STRUCTURES.register("prune")(Structure(_pruned))
STRUCTURES.register("distill")(Structure(lambda net, step, state: net))


def _int8_rebuild(net: nn.Module, step: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> nn.Module:
    if step.get("storage") != "pt2e":
        raise CheckpointError("this int8 checkpoint was written by depthscope's earlier int8 flow (torch.ao FX, "
                              "removed); quantise the float model again: depthscope optimize --method int8")  # fmt: skip
    example = torch.zeros(1, 3, *[int(v) for v in step["input_size"]])
    return int8_skeleton(net, example, [str(k) for k in step["keep_float"]])


STRUCTURES.register("int8")(Structure(_int8_rebuild))
