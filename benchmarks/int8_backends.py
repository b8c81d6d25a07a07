"""Which int8 path is worth shipping on this CPU? METER-XXS quantised by depthscope's flow and by ONNX Runtime's,
each calibrated on the same 32 augmented crops of NYU sample images 5-9 and measured in one run against its own
fp32 runtime: RMSE on images 0-4 (Eigen crop), the mean relative depth difference to fp32, and the network's median
forward at 192x256, batch 1, in interleaved rounds.

* ``pt2e``: depthscope's ``--method int8`` (``torch.export`` + torchao's ``X86InductorQuantizer`` on every region
  without a transformer, ``decoder.ups_block_3`` kept float, the whole network compiled by Inductor with freezing:
  oneDNN int8 convolutions), against eager fp32 and against the fp32 network compiled the same way (what a user who
  compiles fp32 would get without int8).
* ``pt2e-reference``: the same int8 network run eagerly (its reference graphs: int8 rounding in fp32 kernels; what
  hooked and gradient-enabled calls run), against eager fp32.
* ``ort``: ONNX Runtime's static QDQ quantiser (per-channel int8 weights, uint8 activations, MinMax), against ONNX
  Runtime fp32.

``reduce_range`` (7-bit activations) is on where the CPU lacks VNNI (AVX2 only: the 8-bit products saturate there).
Needs the [int8] and [onnx] extras; compiling takes about a minute on 2 cores.

Run: python benchmarks/int8_backends.py [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from _common import setup
from torch import nn

from depthscope.metrics.evaluate import evaluate
from depthscope.models import DepthModel
from depthscope.models.quantized import COMPILE_ENV, calibrate, convert_int8, prepare_int8
from depthscope.optimize.distill import batch_source
from depthscope.optimize.images import image_paths, load_images
from depthscope.output.tables import format_table

REDUCE_RANGE = not torch.cpu._is_vnni_supported()


class Eager(nn.Module):
    """An int8 network run on its reference graphs (no compile), whatever the environment says."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        old = os.environ.get(COMPILE_ENV)
        os.environ[COMPILE_ENV] = "0"
        try:
            return self.net(x)
        finally:
            os.environ.pop(COMPILE_ENV) if old is None else os.environ.__setitem__(COMPILE_ENV, old)


class Compiled(nn.Module):
    """The fp32 network compiled by Inductor with freezing, as depthscope compiles its int8 networks."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.run = torch.compile(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch._inductor.config.patch(freezing=True):
            return self.run(x)


class OrtNet(nn.Module):
    """An ONNX Runtime session as a module (float tensors in and out), so evaluate can run it."""

    def __init__(self, path: str, threads: int) -> None:
        super().__init__()
        from depthscope.efficiency.onnx import OnnxNetwork

        self.session = OnnxNetwork(path, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.session(x)


def ort_pair(model: DepthModel, calib: list[torch.Tensor], threads: int, folder: str) -> tuple[nn.Module, nn.Module]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from depthscope.efficiency.onnx import export_onnx

    f32, pre, q8 = f"{folder}/fp32.onnx", f"{folder}/pre.onnx", f"{folder}/int8.onnx"
    export_onnx(model, f32)
    quant_pre_process(f32, pre, skip_symbolic_shape=True)
    fp32 = OrtNet(f32, threads)
    name = fp32.session.input.name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {name: x.numpy()}

    quantize_static(pre, q8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=REDUCE_RANGE,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)  # fmt: skip
    return fp32, OrtNet(q8, threads)


def median_ms(fn: Callable[[torch.Tensor], object], x: torch.Tensor, repeats: int) -> float:
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    ap.add_argument("--repeats", type=int, default=20, help="timed forwards per network per round")
    args = ap.parse_args()
    model, data = setup(args.threads)
    net = model.net.eval()
    images = load_images(image_paths(str(data.root / "image_[5-9].png")))
    batches = batch_source(model, images, 1, 0)
    calib = [batches(i) for i in range(32)]
    x0 = calib[0]
    nets: dict[str, tuple[nn.Module, nn.Module]] = {}
    seconds: dict[str, float] = {}
    os.environ[COMPILE_ENV] = "1"
    t0 = time.perf_counter()
    observed = prepare_int8(net, x0)
    calibrate(observed, calib)
    q = convert_int8(observed)
    with torch.no_grad():
        q(x0)  # the compile, counted in quantise_s
    seconds["pt2e"] = seconds["pt2e-vs-compiled-fp32"] = seconds["pt2e-reference"] = time.perf_counter() - t0
    nets["pt2e"] = (net, q)
    nets["pt2e-vs-compiled-fp32"] = (Compiled(net), q)
    nets["pt2e-reference"] = (net, Eager(q))
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        nets["ort"] = ort_pair(model, calib, args.threads, folder)
        seconds["ort"] = time.perf_counter() - t0
        fp32_rmse = evaluate(model, data, limit=5).metrics["rmse"]
        rows = []
        xn = model.prepare(data[0].image[None])
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in nets}
        for _ in range(args.rounds):
            for name, (ref, q) in nets.items():
                for m in (ref, q):  # warm-up
                    with torch.no_grad():
                        m(xn)
                times[name].append((median_ms(ref, xn, args.repeats), median_ms(q, xn, args.repeats)))
        for name, (ref, q) in nets.items():
            qm, rm = DepthModel(q, model.info), DepthModel(ref, model.info)
            diffs = []
            for i in range(5):
                with torch.no_grad():
                    a, b = rm(data[i].image[None]), qm(data[i].image[None])
                diffs.append(float(((b - a).abs() / a).mean()))
            ref_ms = statistics.median(t for t, _ in times[name])
            q_ms = statistics.median(t for _, t in times[name])
            rows.append({
                "backend": name, "rmse_m": evaluate(qm, data, limit=5).metrics["rmse"],
                "fp32_runtime_rmse_m": evaluate(rm, data, limit=5).metrics["rmse"],
                "mean_rel_depth_diff": statistics.mean(diffs), "fp32_ms": ref_ms, "int8_ms": q_ms,
                "speedup": ref_ms / q_ms, "quantise_s": seconds[name],
            })  # fmt: skip
    print(f"METER-XXS, NYU images 0-4, fp32 RMSE {fp32_rmse:.3f} m; network 192x256, batch 1, {args.threads} threads, "
          f"{args.rounds} interleaved rounds; vnni={torch.cpu._is_vnni_supported()}")  # fmt: skip
    print(format_table(rows, digits=3))


if __name__ == "__main__":
    main()
