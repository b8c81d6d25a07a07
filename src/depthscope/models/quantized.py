"""int8 post-training static quantisation on the CPU through PT2E (``torch.export`` + torchao's x86 quantizer).

Any exportable network: every largest sub-module that holds no float leaf is one *region*, exported with a dynamic
batch and annotated by torchao's ``X86InductorQuantizer`` (static int8, per-channel weights, batch norms folded
into their convolutions, histogram observers for activations, 7-bit activations where the CPU lacks VNNI, whose
8-bit products saturate). Float leaves run as ordinary fp32 modules between regions: a model's attention
transformers (:data:`FLOAT_LEAVES`; Attention Rollout hooks their attention maps, and their LayerNorm, softmax and
matmuls are a small share of the MACs) and the modules named in ``keep_float``.

A converted network runs whole compiled by Inductor (oneDNN int8 convolutions, the quantise/dequantise pairs
between them removed), compiled on its first call, whenever no gradient or hook needs its eager modules; otherwise,
or where ``torch.compile`` fails (one warning), it runs the reference graphs (the same int8 rounding, computed in
fp32 kernels).

METER keeps ``decoder.ups_block_3`` in float: it concatenates a decoder map with the 1/4-resolution encoder skip,
whose ranges differ so much that one int8 scale for both made the depth 19 % wrong (mean relative difference to
fp32 on NYU images), against 2 % with that block in float (measured with the earlier FX flow; see the README).

Checkpoints (a converted network's ``state_dict``) hold each region's batch-norm-folded fp32 weights and every observer's scale and
zero point, no calibration histograms: loading re-exports the regions, restores those scales and converts, which
gives the same int8 graph as the run that calibrated it.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import types
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from depthscope.errors import CheckpointError, InputError
from depthscope.models.base import require_modules, source_type
from depthscope.models.hooks import forward_hooks
from depthscope.models.meter import METER, Transformer
from depthscope.ops.quiet import quiet_tracing, trace_reason

KEEP_FLOAT: dict[type, tuple[str, ...]] = {METER: ("decoder.ups_block_3",)}
FLOAT_LEAVES: tuple[type, ...] = (Transformer,)  # run as whole fp32 modules, not exported
COMPILE_ENV = "DEPTHSCOPE_INT8_COMPILE"  # "0": run the reference graphs, no torch.compile


def _quantizer() -> Any:
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    vnni = torch.cpu._is_vnni_supported()
    config = get_default_x86_inductor_quantization_config(reduce_range=not vnni)
    return X86InductorQuantizer().set_global(config)


def _import_torchao() -> None:
    """Import torchao once, quietly: on a CPU-only machine it logs a warning per CUDA extension it cannot load, and
    torch logs a deprecation of torchao's own, none of which concern depthscope's user."""
    quiet = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        import torchao.quantization.pt2e  # noqa: F401
    except ImportError:
        raise InputError("int8 quantisation needs torchao: pip install 'depthscope[int8]'") from None
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def default_keep_float(net: nn.Module) -> tuple[str, ...]:
    """The modules a known architecture keeps in fp32 (:data:`KEEP_FLOAT`); none for other networks."""
    return next((KEEP_FLOAT[c] for c in source_type(net).__mro__ if c in KEEP_FLOAT), ())


def _batch_dims(args: tuple) -> tuple:
    from torch.export import Dim
    from torch.utils._pytree import tree_map

    batch = Dim("batch", max=4096)
    return tuple(tree_map(lambda a: {0: batch} if isinstance(a, torch.Tensor) else None, list(args)))


def _export(mod: nn.Module, args: tuple) -> torch.fx.GraphModule:
    with quiet_tracing():  # a failing export prints its graph; the error below names the module and reason
        return torch.export.export(mod, args, dynamic_shapes=_batch_dims(args)).module()


def _culprit(mod: nn.Module, name: str, inputs: Mapping[str, tuple], error: BaseException) -> tuple[str, str]:
    """The deepest sub-module of a region that fails to export (its own code, if all its children export)."""
    for child, c in mod.named_children():
        full = f"{name}.{child}" if name else child
        if full in inputs:
            try:
                _export(c, inputs[full])
            except Exception as e:  # noqa: BLE001 - any export failure is reported, named
                return _culprit(c, full, inputs, e)
    return name, trace_reason(error, 200)


def prepare_int8(net: nn.Module, example: torch.Tensor, keep_float: Sequence[str] | None = None) -> nn.Module:
    """A copy of ``net`` (eval) whose regions are exported and carry observers, ready for :func:`calibrate`.

    Args:
        net: the float network (any ``nn.Module`` taking one image batch).
        example: one network input (B x 3 x H x W); its size is the one calibration and inference use.
        keep_float: module names (as in ``named_modules()``) that stay fp32; default :func:`default_keep_float`.

    Returns:
        The observed network (same class and module names outside the regions).

    Raises:
        InputError: a ``keep_float`` name is not a module, or a region cannot be exported (the message names the
            module and suggests ``--keep-float`` for it).
    """
    _import_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    keep = tuple(default_keep_float(net) if keep_float is None else keep_float)
    require_modules(net, keep, "--keep-float")
    observed = _quiet_copy(net).eval()
    calls: dict[str, list[tuple]] = {}

    def record(name: str, args: tuple, kwargs: dict, _out: None) -> None:
        calls.setdefault(name, []).append(args if not kwargs else ())  # keyword calls: not exported whole

    with forward_hooks(observed.named_modules(), record, pre=True), torch.no_grad():
        observed(example[:1].expand(2, *example.shape[1:]).contiguous())  # batch 2: export would specialise 1
    # a region is a module called once, positionally (a shared module or one given keywords is entered instead)
    inputs = {n: c[0] for n, c in calls.items() if len(c) == 1 and c[0]}

    def floating(m: nn.Module, name: str) -> bool:
        return isinstance(m, FLOAT_LEAVES) or name in keep

    regions: list[str] = []

    def walk(m: nn.Module, name: str) -> None:
        if floating(m, name):
            return
        inner = any(floating(s, f"{name}.{n}" if name else n) for n, s in m.named_modules() if n)
        if name in inputs and not inner and any(True for _ in m.parameters()):
            regions.append(name)
            return
        for child, c in m.named_children():
            walk(c, f"{name}.{child}" if name else child)

    walk(observed, "")
    if not regions:
        raise InputError(f"{type(net).__name__}: no module outside the float ones ({', '.join(keep) or 'none'}) to "
                         "quantise")  # fmt: skip
    for r in regions:
        mod = observed.get_submodule(r) if r else observed
        try:
            exported = _export(mod, inputs[r])
        except Exception as e:  # noqa: BLE001 - torch.export raises many types; all are reported the same way
            where, why = _culprit(mod, r, inputs, e)
            label = where or "the whole network"
            raise InputError(f"torch.export cannot trace {label} ({type(observed.get_submodule(where)).__name__}): "
                             f"{why}; keep it in float with --keep-float {where or 'MODULE'}") from None  # fmt: skip
        prepared = prepare_pt2e(exported, _quantizer())
        _inference_mode_only(prepared)
        prepared.meta["int8_region"] = True
        observed = _put(observed, r, prepared)
    if isinstance(observed, torch.fx.GraphModule):
        observed.meta["source_type"] = source_type(net)
    return observed


def _put(root: nn.Module, name: str, module: nn.Module) -> nn.Module:
    """``root`` with its sub-module ``name`` replaced by ``module`` (``module`` itself for the root)."""
    if not name:
        return module
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)
    return root


def _regions(net: nn.Module) -> list[tuple[str, torch.fx.GraphModule]]:
    """The prepared (observed) regions of ``net``, by name."""
    return [(n, m) for n, m in net.named_modules() if isinstance(m, torch.fx.GraphModule) and m.meta.get("int8_region")]


@torch.no_grad()
def calibrate(observed: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Run calibration batches (network inputs) through the observed model; return the number of images."""
    n = 0
    for x in batches:
        observed(x)
        n += x.shape[0]
    return n


@functools.cache
def _frozen_observer() -> type:
    """The observer class a converted region keeps (a torchao ``ObserverBase``, which convert looks for; defined
    on first use so that importing depthscope does not import torchao)."""
    from torchao.quantization.pt2e.observer import ObserverBase

    class FrozenObserver(ObserverBase):
        """An observer reduced to the scale and zero point it computed: what a checkpoint stores, convert reads."""

        def __init__(self, observer: nn.Module, calibrated: bool) -> None:
            super().__init__(dtype=observer.dtype)
            self.qscheme, self.quant_min, self.quant_max = observer.qscheme, observer.quant_min, observer.quant_max
            self.ch_axis = getattr(observer, "ch_axis", -1)
            # uncalibrated (a skeleton to load into): placeholders, resized to the file's by _load_from_state_dict
            scale, zero = (
                observer.calculate_qparams() if calibrated else (torch.ones(1), torch.zeros(1, dtype=torch.int))
            )
            self.register_buffer("scale", scale.detach().clone().float().reshape(-1))
            self.register_buffer("zero_point", zero.detach().clone().reshape(-1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
            return self.scale, self.zero_point

        def _load_from_state_dict(self, state, prefix, *args, **kwargs) -> None:  # noqa: ANN001 - nn.Module hook
            for key in ("scale", "zero_point"):  # per-channel observers: one value a channel, sized by the file
                if prefix + key in state:
                    setattr(self, key, torch.empty_like(state[prefix + key]))
            super()._load_from_state_dict(state, prefix, *args, **kwargs)

    return FrozenObserver


def _freeze(prepared: torch.fx.GraphModule, calibrated: bool) -> None:
    """Replace every observer of a prepared region by its scale and zero point (placeholders if not calibrated)."""
    from torchao.quantization.pt2e.observer import ObserverBase

    frozen = _frozen_observer()
    for name, m in list(prepared.named_children()):
        if isinstance(m, ObserverBase):
            setattr(prepared, name, frozen(m, calibrated))


class Int8Region(nn.Module):
    """A converted region. Its state is the observed graph with frozen scales (what a checkpoint holds); it runs
    the int8 graph converted from it (built by :meth:`build`, not part of the state)."""

    def __init__(self, frozen: torch.fx.GraphModule) -> None:
        super().__init__()
        self.observed = frozen
        object.__setattr__(self, "_int8", None)  # not a submodule: derived from ``observed``

    def __deepcopy__(self, memo: dict) -> Int8Region:
        twin = Int8Region(_quiet_copy(self.observed, memo))
        return twin.build() if self._int8 is not None else twin

    def build(self) -> Int8Region:
        """Convert the (loaded) observed graph to the int8 graph; called again after its state changes."""
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            graph = convert_pt2e(_quiet_copy(self.observed))
        _inference_mode_only(graph)
        object.__setattr__(self, "_int8", graph)
        return self

    def forward(self, *args: Any) -> Any:
        return self._int8(*args)


def _inference_mode_only(graph: torch.fx.GraphModule) -> None:
    """Let ``train()`` / ``eval()`` reach an exported region (``DepthModel.eval()`` calls them; an exported graph
    refuses both) as no-ops: it was exported from the network in eval mode, so its batch norms and dropouts are
    already inference ops. torchao's ``allow_exported_model_train_eval`` would re-trace its dropout and batch-norm
    patterns at every call instead (loading METER-XXS's int8 checkpoint: 21 s with it, 6 s without)."""

    def keep(self: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
        return self

    graph.train = types.MethodType(keep, graph)  # type: ignore[method-assign]
    graph.eval = types.MethodType(keep, graph)  # type: ignore[method-assign]


def _quiet_copy(module: nn.Module, memo: dict | None = None) -> nn.Module:
    """``deepcopy`` of a module holding exported graphs (torch's own pytree code warns of a deprecation there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(module, memo)


_COMPILED: weakref.WeakKeyDictionary[nn.Module, Any] = weakref.WeakKeyDictionary()


def _hooked(net: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


@functools.cache
def _compiling(cls: type) -> type:
    """``cls`` whose forward runs the whole network compiled by Inductor when nothing needs the eager modules (no
    gradients, no hooks: Attention Rollout and Grad-CAM hook sub-modules), eager otherwise (module docstring)."""

    def forward(self: nn.Module, *args: Any) -> Any:
        eager = super(compiled_cls, self).forward
        if os.environ.get(COMPILE_ENV, "1") == "0" or torch.is_grad_enabled() or _hooked(self):
            return eager(*args)
        run = _COMPILED.get(self)
        if run is None:
            run = _COMPILED[self] = torch.compile(eager)
        try:
            with torch._inductor.config.patch(freezing=True):  # weights as constants: int8 packed once
                return run(*args)
        except Exception as e:  # noqa: BLE001 - no C++ compiler, an op Inductor lacks: the reference graphs still run
            warnings.warn(f"torch.compile of the int8 network failed ({trace_reason(e, 200)}); "
                          "running the reference int8 graphs (slower)", RuntimeWarning, stacklevel=2)  # fmt: skip
            _COMPILED[self] = eager
            return eager(*args)

    compiled_cls = type(cls.__name__, (cls,), {"forward": forward, "__module__": cls.__module__,
                                               "__qualname__": cls.__qualname__, "int8_compiling": True})  # fmt: skip
    return compiled_cls


def _finish(net: nn.Module, source: type) -> nn.Module:
    if isinstance(net, Int8Region):
        net.meta = {"source_type": source}
    if not getattr(type(net), "int8_compiling", False):
        net.__class__ = _compiling(type(net))
    return net


def convert_int8(observed: nn.Module) -> nn.Module:
    """The int8 model from a calibrated observed model (a copy; ``observed`` is unchanged)."""
    net = _quiet_copy(observed)
    for name, prepared in _regions(net):
        _freeze(prepared, calibrated=True)
        net = _put(net, name, Int8Region(prepared).build())
    return _finish(net, source_type(observed))


def int8_skeleton(net: nn.Module, example: torch.Tensor, keep_float: Sequence[str] | None = None) -> nn.Module:
    """The converted network of ``net``'s structure with placeholder scales: what :func:`load_int8_state` fills
    from a checkpoint (no calibration runs)."""
    observed = prepare_int8(net, example, keep_float)
    for name, prepared in _regions(observed):
        _freeze(prepared, calibrated=False)
        observed = _put(observed, name, Int8Region(prepared))
    return _finish(observed, source_type(net))


def load_int8_state(converted: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load a checkpoint's tensors (a converted network's state_dict) into :func:`int8_skeleton` and convert each
    region; a mismatch names the keys."""
    want, have = set(converted.state_dict()), set(state)
    if want != have:
        missing, unexpected = sorted(want - have)[:8], sorted(have - want)[:8]
        raise CheckpointError(f"int8 checkpoint {origin} does not match the network: missing keys "
                              f"{', '.join(missing) or 'none'}; unexpected keys {', '.join(unexpected) or 'none'}")  # fmt: skip
    own = converted.state_dict()
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape) and not k.endswith((".scale", ".zero_point")):
            raise CheckpointError(
                f"int8 checkpoint {origin}: {k} is {tuple(v.shape)}, the network has {tuple(own[k].shape)}"
            )
    converted.load_state_dict(dict(state), strict=True)
    for region in converted.modules():
        if isinstance(region, Int8Region):
            region.build()
