"""``profile``: every cost metric of one or several models at one input size, written to ``profile.json``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from depthscope.efficiency.flops import count_macs
from depthscope.efficiency.latency import measure_latency, throughput
from depthscope.efficiency.memory import peak_activation_bytes
from depthscope.efficiency.params import count_params, param_bytes
from depthscope.errors import InputError
from depthscope.models import DepthModel, load_model
from depthscope.output.files import write_json

BACKENDS = ("torch", "onnxruntime")  # runtimes profile times: eager PyTorch; ONNX Runtime (the network alone)


def explain_seconds(model: DepthModel, x: torch.Tensor, methods: Sequence[str]) -> dict[str, float]:
    """Seconds per attribution map (whole-map target) for each method: one untimed run (it also tunes chunk
    sizes), then one timed run. The cost of explaining is an efficiency metric too (SPEC §5)."""
    from depthscope.explain import explain

    out = {}
    for m in methods:
        explain(model, x, m)
        t0 = time.perf_counter()
        explain(model, x, m)
        out[m] = time.perf_counter() - t0
    return out


def default_input_size(model: DepthModel) -> tuple[int, int]:
    """The image size profiled unless told: the network's input size, or for a model with an input crop (KITTI's
    352x1216) the crop's, the smallest image it accepts."""
    crop = model.preprocessing.crop
    return tuple(model.preprocessing.input_size) if crop is None else (crop.height, crop.width)


def profile_model(
    model: DepthModel,
    input_size: tuple[int, int] | None = None,
    warmup: int = 5,
    repeats: int = 20,
    batches: Sequence[int] = (1, 2, 4, 8),
    explain_methods: Sequence[str] = (),
    counts_only: bool = False,
    backends: Sequence[str] = ("torch",),
    onnx: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Params, bytes, MACs/FLOPs, peak activation memory, latency, throughput (and seconds per explanation) of
    ``model`` on an RGB image of ``input_size`` (default: :func:`default_input_size`) on the model's device.

    ``backends`` with ``"onnxruntime"`` also times the *network alone* on that image's network input, in eager
    PyTorch and in ONNX Runtime (CPU execution provider, same threads): ``onnx`` is the exported file to time
    (checked against the model), else the network is exported to a temporary file first
    (:func:`~depthscope.efficiency.onnx.export_onnx`).

    The model applies its own preprocessing, so an image of another size is cropped/resized to the network's
    input (recorded as ``network_input_size``) and that resizing is part of the cost. ``counts_only`` keeps the
    shape-only metrics (params, bytes, MACs/FLOPs), which also work for a model on the ``meta`` device: a deep
    model's costs in seconds without allocating its weights."""
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:  # before anything is timed
        raise InputError(f"--backend {', '.join(unknown)}: unknown; choose from {', '.join(BACKENDS)}")
    h, w = input_size or default_input_size(model)
    if h < 1 or w < 1:
        raise InputError(f"--input-size must be positive, got {h} {w}")
    dev = model.device
    model.eval()
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0)).to(dev)  # meta: shape only
    counted = model.float_twin or model  # an int8 model: its float twin's MACs and parameter count
    macs = count_macs(counted, x)
    by_dtype = param_bytes(model)
    row: dict[str, Any] = {
        "model": model.name,
        "params": count_params(counted),
        "macs": macs.macs,
        "flops": macs.flops,
        "flops_note": "FLOPs = 2 x MACs (conv, linear and attention matmuls; torch FlopCounterMode)",
        "macs_by_op": macs.by_op,
        "param_bytes": sum(by_dtype.values()),
        "param_bytes_by_dtype": by_dtype,
        "input_size": [h, w],
        "network_input_size": list(model.preprocessing.input_size),
        "weights": model.info.weights or "none (random init): cost metrics need no weights",
    }
    if counts_only:
        return row
    # timed first: after a forward under the memory counter's dispatch mode, a compiled int8 network ran at its
    # eager speed in every later call (measured: 14 -> 39 ms; cause not isolated)
    lat = measure_latency(model, x, warmup, repeats)
    peak, peak_method = peak_activation_bytes(model, x)
    row |= {
        "peak_memory_bytes": peak,
        "peak_memory_method": peak_method,
        "latency_ms_median": lat.median_ms,
        "latency_ms_p90": lat.p90_ms,
        "latency": lat.to_dict(),
        "throughput_images_per_s": {str(b): v for b, v in throughput(model, x, batches).items()},
        "device": lat.device,
        "threads": lat.threads,
    }
    if explain_methods:
        row["explain_seconds"] = explain_seconds(model, x, explain_methods)
    if "onnxruntime" in backends:
        row |= onnxruntime_latency(model, model.prepare(x), onnx, warmup, repeats)
    return row


def onnxruntime_latency(
    model: DepthModel, xn: torch.Tensor, onnx: str | os.PathLike | None, warmup: int, repeats: int
) -> dict[str, Any]:
    """The network alone on network input ``xn``: eager PyTorch and ONNX Runtime latency (ms, same input, same
    threads; the two alternate in rounds so machine drift hits both alike) and their outputs' agreement."""
    import tempfile

    from depthscope.efficiency.onnx import DEFAULT_RTOL, OnnxNetwork, export_onnx, relative_error

    if xn.device.type != "cpu":
        raise InputError("--backend onnxruntime times the CPU execution provider: use --device cpu")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(onnx) if onnx is not None else Path(export_onnx(model, Path(tmp) / "net.onnx")["path"])
        session = OnnxNetwork(path)
        session.check_matches(model)
        with torch.no_grad():
            agreement = relative_error(session(xn).numpy(), model.net(xn).numpy())
        if agreement > DEFAULT_RTOL:
            raise InputError(
                f"ONNX file {path} does not compute {model.name}'s network: max relative error {agreement:.2e} on "
                f"the same input (> {DEFAULT_RTOL:g}); it was exported from weights "
                f"{session.metadata.get('depthscope.weights', 'unknown')}, the model has {model.weights_record}"
            )
        rounds = max(1, min(5, repeats))
        per = max(1, repeats // rounds)
        eager, ort = [], []
        for _ in range(rounds):  # interleaved: drift of the machine hits both runtimes alike
            eager.append(measure_latency(model.net, xn, warmup, per))
            ort.append(measure_latency(session, xn, warmup, per))
    eager_ms, ort_ms = _median_of_rounds(eager), _median_of_rounds(ort)
    return {
        "net_latency_ms_median": eager_ms,
        "onnxruntime_latency_ms_median": ort_ms,
        "onnxruntime_speedup": eager_ms / ort_ms,
        "onnxruntime_max_relative_error": agreement,
        "onnx_file": str(onnx) if onnx is not None else "exported to a temporary file",
    }


def _median_of_rounds(latencies: Sequence[Any]) -> float:
    return float(sorted(lat.median_ms for lat in latencies)[len(latencies) // 2])


def profile(
    models: Sequence[DepthModel | str],
    out: str | os.PathLike | None = None,
    input_size: tuple[int, int] | None = None,
    device: str = "cpu",
    pretrained: bool = False,
    **kwargs: Any,
) -> dict[str, dict[str, Any]]:
    """Costs of each model (:func:`profile_model`): params, bytes by dtype, MACs and FLOPs (= 2 x MACs, attention
    matmuls included), peak activation memory, latency median/p90 in ms and throughput by batch size.

    Args:
        models: :class:`DepthModel` s or names (names load without weights unless ``pretrained``: costs do not
            depend on them).
        out: ``out/profile.json`` is rewritten atomically after each model, so an interruption keeps the models
            already profiled.
        input_size: the image ``(H, W)`` fed to the model (default: :func:`default_input_size`).
        device: where names are loaded (``"meta"``: counts only).
        pretrained: load the weights of names.
        **kwargs: :func:`profile_model` options (``warmup``, ``repeats``, ``batches``, ``explain_methods``,
            ``counts_only``, ``backends``, ``onnx``).

    Returns:
        ``{model name: {params, macs, flops, latency_ms_median, ...}}``.

    Example:
        >>> rows = profile(["meter-xxs-nyu"], input_size=(192, 256), counts_only=True, device="meta")
        >>> rows["meter-xxs-nyu"]["params"]
        713464
    """
    rows: dict[str, dict[str, Any]] = {}
    for m in models:
        model = load_model(m, device=device, pretrained=pretrained) if isinstance(m, str) else m
        rows[model.name] = profile_model(model, input_size, **kwargs)
        if out is not None:
            write_json(Path(out) / "profile.json", rows)
    return rows
