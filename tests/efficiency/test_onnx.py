"""ONNX export and the ONNX Runtime backend of ``profile``, on the real METER-XXS weights and NYU images.

References are independent of the code under test: the exported file is opened with ONNX Runtime's own API and
the ``onnx`` checker, and compared with the PyTorch network's outputs on real images at batch sizes the export
never saw (dynamic batch)."""

from __future__ import annotations

import json

import numpy as np
import onnx  # the [test] extra installs onnx and onnxruntime: never skipped
import onnxruntime as ort
import pytest
import torch
from cli_errors import error_lines
from torch import nn

from depthscope.cli import main
from depthscope.efficiency import profile_model
from depthscope.errors import InputError
from depthscope.models import wrap


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "meter.onnx"
    assert main(["export", "--model", "meter-xxs-nyu", "--format", "onnx", "--out", str(path)]) == 0
    return path


def test_exported_graph_equals_pytorch_on_real_images_at_any_batch(exported, meter_nyu, nyu):
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto)
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["depthscope.model"] == "meter-xxs-nyu" and meta["depthscope.input_size"] == [192, 256]
    assert meta["depthscope.unit"] == "cm" and meta["depthscope.weights"].endswith("meter_xxs_nyu.pth")
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape[1:] == [3, 192, 256] and not isinstance(inp.shape[0], int)  # dynamic batch
    x = torch.cat([meter_nyu.prepare(nyu[i].image.unsqueeze(0)) for i in range(3)])
    with torch.no_grad():
        ref = meter_nyu.net(x).numpy()
    for batch in (x[:1], x):  # batch 1 and 3: the export traced batch 2
        out = session.run(None, {inp.name: batch.numpy()})[0]
        assert out.shape == ref[: len(batch)].shape
        assert np.abs(out - ref[: len(batch)]).max() <= 1e-4 * np.abs(ref).max()


def test_profile_times_onnxruntime_beside_eager_pytorch(exported, tmp_path, capsys):
    out = tmp_path / "prof"
    rc = main(["profile", "--model", "meter-xxs-nyu", "--backend", "onnxruntime", "--onnx", str(exported),
               "--batches", "1", "--repeats", "5", "--warmup", "1", "--out", str(out)])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "ONNX Runtime" in printed and "onnxruntime_speedup" in printed
    row = json.loads((out / "profile.json").read_text())["meter-xxs-nyu"]
    assert row["onnxruntime_max_relative_error"] <= 1e-4
    assert row["net_latency_ms_median"] > 0 and row["onnxruntime_latency_ms_median"] > 0
    assert row["onnxruntime_speedup"] == pytest.approx(
        row["net_latency_ms_median"] / row["onnxruntime_latency_ms_median"]
    )
    assert row["weights"].endswith("meter_xxs_nyu.pth")  # --onnx loads the trained weights it is checked against


class Foreign(nn.Module):
    """A module depthscope has never seen: two convolutions and a residual, through ``wrap``."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        return nn.functional.softplus(self.b(torch.relu(self.a(x))) + x.mean(1, keepdim=True))


class Untraceable(Foreign):
    def forward(self, x):
        if float(x.mean()) > 0:  # data-dependent Python control flow: torch.export cannot trace it
            return super().forward(x)
        return super().forward(-x)


def test_wrapped_foreign_module_exports_and_bad_files_are_one_error(tmp_path):
    torch.manual_seed(0)
    model = wrap(Foreign().eval(), (32, 48), name="foreign")
    from depthscope.efficiency.onnx import export_onnx

    info = export_onnx(model, tmp_path / "f.onnx")
    assert info["max_relative_error"] <= 1e-4
    x = torch.randn(4, 3, 32, 48)
    s = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model.net(x).numpy()
    assert np.abs(s.run(None, {"image": x.numpy()})[0] - ref).max() <= 1e-4 * np.abs(ref).max()
    row = profile_model(model, batches=(1,), repeats=2, warmup=0, backends=("torch", "onnxruntime"),
                        onnx=tmp_path / "f.onnx")  # fmt: skip
    assert row["onnxruntime_max_relative_error"] <= 1e-4

    with pytest.raises(InputError, match=r"foreign2: torch.onnx.export cannot export its network"):
        export_onnx(wrap(Untraceable().eval(), (32, 48), name="foreign2"), tmp_path / "u.onnx")
    assert not (tmp_path / "u.onnx").exists()
    other = wrap(Foreign().eval(), (32, 48), name="foreign")  # other random weights, same name and shape
    with pytest.raises(InputError, match=r"f.onnx does not compute foreign's network: max relative error"):
        profile_model(other, batches=(1,), repeats=2, warmup=0, backends=("onnxruntime",), onnx=tmp_path / "f.onnx")
    smaller = wrap(Foreign().eval(), (32, 32), name="foreign")
    with pytest.raises(InputError, match=r"f.onnx does not match foreign: its input 'image' is \['batch', 3, 32, 48\]"):
        profile_model(smaller, batches=(1,), repeats=2, warmup=0, backends=("onnxruntime",), onnx=tmp_path / "f.onnx")
    with pytest.raises(InputError, match=r"--backend tensorrt: unknown"):
        profile_model(model, batches=(1,), repeats=2, warmup=0, backends=("tensorrt",))


def test_cli_bad_onnx_input_is_one_line(tmp_path, capsys):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("not a graph")
    cases = [
        (["profile", "--backend", "onnxruntime", "--onnx", str(garbage)], [str(garbage), "ONNX Runtime cannot load it"]),
        (["profile", "--backend", "onnxruntime", "--onnx", str(tmp_path / "none.onnx")], ["none.onnx: no such file"]),
        (["profile", "--onnx", str(garbage)], ["--onnx FILE is timed by --backend onnxruntime"]),
        (["profile", "--model", "meter-xxs-nyu,meter-xs", "--backend", "onnxruntime", "--onnx", str(garbage)],
         ["give one --model"]),
        (["export", "--out", str(tmp_path / "x.onnx"), "--rtol", "0"], ["--rtol must be > 0"]),
    ]  # fmt: skip
    for argv, parts in cases:
        assert main([*argv, "--out", str(tmp_path / "o")] if argv[0] == "profile" else argv) == 2, argv
        (line,) = error_lines(capsys.readouterr().err)
        assert all(p in line for p in parts), line


def test_int8_model_export_is_refused_in_one_error(meter_nyu, nyu, tmp_path):
    import copy

    from depthscope.efficiency.onnx import export_onnx
    from depthscope.models.base import DepthModel
    from depthscope.models.quantized import calibrate, convert_int8, prepare_int8

    x = meter_nyu.prepare(nyu[0].image.unsqueeze(0))
    observed = prepare_int8(meter_nyu.net, x)
    calibrate(observed, [x])
    int8 = DepthModel(convert_int8(observed), meter_nyu.info)
    object.__setattr__(int8, "float_twin", DepthModel(copy.deepcopy(meter_nyu.net), meter_nyu.info))
    with pytest.raises(InputError, match=r"an int8 model's quantised kernels are not exported to ONNX"):
        export_onnx(int8, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()
