"""ONNX: a model's network exported as a graph that ONNX Runtime runs, checked against PyTorch, and timed there.

What is exported is the *network*: its input is the preprocessed image ``(B, 3, H, W)`` at the network's input
size (crop, resize and normalisation stay in the caller's code: they are recorded in the file's metadata), its
output the raw network output in the model's unit, before depthscope upsamples and converts it to metres. The
batch dimension is dynamic. The exporter is ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` underneath);
a file is written only after ONNX Runtime's outputs on a batch of 1 and of 2 agree with PyTorch's to ``rtol``
(maximum absolute difference over the maximum absolute output): the graph is checked in memory and written
atomically, so no unchecked or half-written file is ever left behind.

Needs the ``onnx`` extra (``onnx``, ``onnxscript``, ``onnxruntime``); the core never imports this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthscope.errors import InputError
from depthscope.models.base import DepthModel
from depthscope.ops.quiet import quiet_tracing, trace_reason
from depthscope.output.files import write_atomic

INPUT, OUTPUT = "image", "depth"
DEFAULT_RTOL = 1e-4
OPSET = 18


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"ONNX export and --backend onnxruntime need {module}: pip install 'depthscope[onnx]'"
        ) from None


def _example(model: DepthModel, batch: int, seed: int) -> torch.Tensor:
    """A network input: random preprocessed-looking values (N(0, 1)), what the network sees after ``prepare``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *model.preprocessing.input_size, generator=g)


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    """``max |out - ref| / max |ref|``: the agreement measure of an exported graph (0 for identical outputs)."""
    return float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-12))


@dataclass
class OnnxNetwork:
    """An ONNX Runtime session (CPU execution provider) over an exported network; calling it runs the graph on a
    torch tensor and returns a torch tensor, so latency code times it like a module.

    Args:
        path: the ``.onnx`` file (its name in errors).
        threads: intra-op threads (default: torch's current count, so both runtimes get the same).
        graph: the serialised graph itself, when it is not read from ``path`` (a graph checked before it is
            written).
    """

    path: Path
    threads: int | None = None
    graph: bytes | None = None

    def __post_init__(self) -> None:
        ort = _need("onnxruntime")
        self.path = Path(self.path)
        if self.graph is None and not self.path.is_file():
            raise InputError(f"ONNX file {self.path}: no such file")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: ONNX Runtime's own notices are not the user's problem
        try:
            source = str(self.path) if self.graph is None else self.graph
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable or invalid graphs
            raise InputError(f"ONNX file {self.path}: ONNX Runtime cannot load it ({type(e).__name__}: {e})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InputError(f"ONNX file {self.path}: a depth network has one input, this graph has {len(inputs)}")
        self.input = inputs[0]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k: json.loads(v) for k, v in meta.items() if k.startswith("depthscope.")}

    def check_matches(self, model: DepthModel) -> None:
        """One error naming the file if its input is not ``model``'s network input ``(B, 3, H, W)``."""
        want = [3, *model.preprocessing.input_size]
        shape = list(self.input.shape)
        fixed = [d if isinstance(d, int) else None for d in shape[1:]]
        if len(shape) != 4 or fixed != want:
            raise InputError(
                f"ONNX file {self.path} does not match {model.name}: its input {self.input.name!r} is "
                f"{shape}, the network takes (batch, {', '.join(map(str, want))})"
            )
        name = self.metadata.get("depthscope.model")
        if name is not None and name != model.name:
            raise InputError(f"ONNX file {self.path} was exported from {name!r}, not {model.name!r}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input.name: x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)


def export_onnx(
    model: DepthModel, out: str | os.PathLike, rtol: float = DEFAULT_RTOL, opset: int = OPSET
) -> dict[str, Any]:
    """Export ``model``'s network to ONNX with a dynamic batch, check it in ONNX Runtime, write it atomically.

    Args:
        model: a float :class:`DepthModel` (an int8 model's kernels have no ONNX export here).
        out: the ``.onnx`` file to write (its folder is created).
        rtol: largest accepted ``max |ORT - torch| / max |torch|`` on batches of 1 and 2.
        opset: the ONNX opset.

    Returns:
        ``{"path", "model", "input_size", "opset", "max_relative_error", "checked_batches"}``.

    Example:
        >>> info = export_onnx(load_model("meter-xxs-nyu"), "out/meter.onnx")  # doctest: +SKIP
        >>> info["max_relative_error"] < 1e-4  # doctest: +SKIP
        True
    """
    if not model.differentiable:
        raise InputError(
            f"{model.name}: an int8 model's quantised kernels are not exported to ONNX; export the float model"
        )
    _need("onnx")
    _need("onnxscript")
    out = Path(out)
    net = model.net.eval()
    example = _example(model, 2, 0)
    try:
        with torch.no_grad(), quiet_tracing():
            program = torch.onnx.export(
                net, (example,), dynamo=True, opset_version=opset, input_names=[INPUT], output_names=[OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
            )  # fmt: skip
    except Exception as e:  # the exporter raises many types; the user needs the model and the reason
        raise InputError(f"{model.name}: torch.onnx.export cannot export its network ({trace_reason(e)})") from None
    proto = program.model_proto
    meta = {
        "depthscope.model": model.name,
        "depthscope.weights": model.weights_record,
        "depthscope.input_size": list(model.preprocessing.input_size),
        "depthscope.mean": model.preprocessing.mean,
        "depthscope.std": model.preprocessing.std,
        "depthscope.unit": model.preprocessing.unit,
        "depthscope.output": "raw network output in the unit above, before depthscope's upsampling",
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v)
    graph = proto.SerializeToString()
    session = OnnxNetwork(out, graph=graph)
    errors = []
    for batch, seed in ((1, 1), (2, 2)):
        x = _example(model, batch, seed)
        with torch.no_grad():
            ref = net(x).numpy()
        errors.append(relative_error(session(x).numpy(), ref))
    if max(errors) > rtol:
        raise InputError(
            f"{model.name}: the exported graph disagrees with PyTorch (max relative error {max(errors):.2e} > "
            f"{rtol:g}); nothing written to {out}"
        )
    write_atomic(out, graph)
    return {
        "path": str(out),
        "model": model.name,
        "input_size": list(model.preprocessing.input_size),
        "opset": opset,
        "max_relative_error": max(errors),
        "checked_batches": [1, 2],
    }
