"""Which int8 path is worth shipping on this CPU? METER-XXS quantised by every int8 flow of the ecosystem, each
calibrated on the same 32 augmented crops of NYU sample images 5-9 and measured in one run against its own fp32
runtime: RMSE on images 0-4 (Eigen crop), the mean relative depth difference to fp32, and the network's median
forward at 192x256, batch 1, in interleaved rounds.

* ``fx``: depthscope's current path (``torch.ao.quantization.quantize_fx``, fbgemm kernels; deprecated in torch
  2.13), against eager fp32.
* ``pt2e``: ``torch.export`` + torchao's ``X86InductorQuantizer`` (``prepare_pt2e`` / ``convert_pt2e``), every
  exportable region holding no transformer exported with a dynamic batch (the transformers stay fp32 modules, as
  Attention Rollout needs them), ``decoder.ups_block_3`` kept float, each region lowered to oneDNN int8 kernels
  (torchao's ``lower_pt2e_quantized_to_x86`` passes, with a dynamic batch); against eager fp32.
* ``pt2e-whole``: the same on the whole network as one graph (transformers quantised too).
* ``ort``: ONNX Runtime's static QDQ quantiser (per-channel int8 weights, uint8 activations, MinMax), against ONNX
  Runtime fp32.

``reduce_range`` (7-bit activations) is on for torchao and ONNX Runtime where the CPU lacks VNNI (AVX2 only: the
8-bit products saturate there). Needs ``pip install torchao`` besides the [onnx] extra.

Run: python benchmarks/int8_backends.py [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
from _common import setup
from torch import nn

from depthscope.metrics.evaluate import evaluate
from depthscope.models import DepthModel
from depthscope.models.meter import Transformer
from depthscope.models.quantized import calibrate, convert_int8, prepare_int8
from depthscope.optimize.distill import batch_source
from depthscope.optimize.images import image_paths, load_images
from depthscope.output.tables import format_table

KEEP_FLOAT = ("decoder.ups_block_3",)
REDUCE_RANGE = not torch.cpu._is_vnni_supported()


def _dynamic(args: tuple) -> tuple:
    from torch.export import Dim
    from torch.utils._pytree import tree_map

    batch = Dim("batch", max=4096)
    return tuple(tree_map(lambda a: {0: batch} if isinstance(a, torch.Tensor) else None, list(args)))


def _lower(gm: nn.Module, args: tuple) -> nn.Module:
    """torchao's ``lower_pt2e_quantized_to_x86`` with a dynamic batch (torchao's own traces a static one)."""
    from torch._inductor.constant_folding import constant_fold
    from torch._inductor.fx_passes.freezing_patterns import freezing_passes

    table = torch.export.default_decompositions()
    for k in list(table):
        if not torch._export.utils._is_cia_op(k):
            del table[k]
    low = torch.export.export(gm, args, dynamic_shapes=_dynamic(args)).run_decompositions(table).module()
    for node in list(low.graph.nodes):
        if node.target == torch.ops.aten.t.default:
            with low.graph.inserting_before(node):
                perm = low.graph.call_function(torch.ops.aten.permute.default, (node.args[0], [1, 0]))
            node.replace_all_uses_with(perm)
            low.graph.erase_node(node)
    low.recompile()
    freezing_passes(low, args)
    constant_fold(low)
    return low


def pt2e(net: nn.Module, calib: list[torch.Tensor], whole: bool) -> nn.Module:
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    q = copy.deepcopy(net).eval()
    inputs: dict[str, tuple] = {}
    hooks = [m.register_forward_pre_hook(lambda m, a, n=n: inputs.setdefault(n, a)) for n, m in q.named_modules()]
    with torch.no_grad():
        q(torch.cat([calib[0], calib[1]]))  # batch 2: a batch of 1 would be specialised by export
    for h in hooks:
        h.remove()
    regions: list[str] = []

    def walk(m: nn.Module, name: str) -> None:
        if isinstance(m, Transformer):
            return
        if name in inputs and (whole or not any(isinstance(s, Transformer) for s in m.modules())):
            regions.append(name)
            return
        for child, c in m.named_children():
            walk(c, f"{name}.{child}" if name else child)

    walk(q, "")

    def put(name: str, m: nn.Module) -> nn.Module:
        nonlocal q
        if not name:
            q = m
            return q
        parent, _, leaf = name.rpartition(".")
        setattr(q.get_submodule(parent) if parent else q, leaf, m)
        return q

    prepared = {}
    for r in regions:
        mod = q.get_submodule(r) if r else q
        quantizer = X86InductorQuantizer().set_global(
            get_default_x86_inductor_quantization_config(reduce_range=REDUCE_RANGE)
        )
        for k in KEEP_FLOAT:
            if not r or k.startswith(r + "."):
                quantizer.set_module_name_qconfig(k[len(r) + 1 :] if r else k, None)
        ep = torch.export.export(mod, inputs[r], dynamic_shapes=_dynamic(inputs[r]))
        prepared[r] = prepare_pt2e(ep.module(), quantizer)
        put(r, prepared[r])
    with torch.no_grad():
        for x in calib:
            q(x)
    for r, pm in prepared.items():
        cm = convert_pt2e(pm)
        allow_exported_model_train_eval(cm)
        low = _lower(cm, inputs[r])
        allow_exported_model_train_eval(low)  # evaluate calls .eval(), which exported modules refuse otherwise
        put(r, low)
    return q


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
    t0 = time.perf_counter()
    observed = prepare_int8(net, x0)
    calibrate(observed, calib)
    nets["fx"] = (net, convert_int8(observed))
    seconds["fx"] = time.perf_counter() - t0
    for name, whole in (("pt2e", False), ("pt2e-whole", True)):
        t0 = time.perf_counter()
        nets[name] = (net, pt2e(net, calib, whole))
        seconds[name] = time.perf_counter() - t0
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
