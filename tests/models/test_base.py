import os
from pathlib import Path

import pytest
import torch
from cli_errors import one_line_error
from torch import nn

import depthscope as ds
from depthscope.errors import InputError
from depthscope.models import wrap


class Const(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return self.w * torch.ones(x.shape[0], 1, x.shape[2] // 2, x.shape[3] // 2)


@pytest.mark.parametrize(
    ("unit", "raw", "metres"), [("m", 2.5, 2.5), ("cm", 250.0, 2.5), ("dm", 25.0, 2.5), ("mm", 2500.0, 2.5)]
)
def test_wrap_units_and_resolution(unit, raw, metres):
    m = wrap(Const(raw), input_size=(32, 48), unit=unit)
    out = m(torch.rand(2, 3, 60, 80))
    assert out.shape == (2, 1, 60, 80)
    torch.testing.assert_close(out, torch.full_like(out, metres))


def test_wrap_bad_arguments():
    with pytest.raises(InputError, match="unit"):
        wrap(Const(1.0), input_size=(8, 8), unit="inch")
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        wrap(Const(1.0), input_size=(8, 8))(torch.rand(1, 4, 8, 8))


def test_normalisation_is_data(meter_nyu):
    img = torch.rand(1, 3, 192, 256)
    x = meter_nyu.prepare(img)
    ref = (img - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(x, ref)


ENTRY = """
import depthscope as ds
from depthscope.models import load_model


def build(weights=None, pretrained=True):
    net = load_model("meter-xxs-nyu", weights=weights, pretrained=pretrained).net
    return ds.wrap(net, input_size=(192, 256), unit="cm", name="my-meter")


def bare():
    return load_model("meter-xxs-nyu").net
"""


def _in_dir_with_entry_module(tmp_path, monkeypatch):
    """cd into a folder holding my_models.py; relative DEPTHSCOPE_* paths (as CI sets them) made absolute first."""
    import os
    from pathlib import Path

    for var in ("DEPTHSCOPE_WEIGHTS", "DEPTHSCOPE_DATA"):
        monkeypatch.setenv(var, str(Path(os.environ[var]).resolve()))
    (tmp_path / "my_models.py").write_text(ENTRY)
    monkeypatch.chdir(tmp_path)


def test_entry_point_model_runs_every_command(tmp_path, monkeypatch, nyu_dir):
    import json

    from depthscope.cli import main
    from depthscope.models import load_model

    data = nyu_dir.resolve()
    _in_dir_with_entry_module(tmp_path, monkeypatch)
    m = load_model("my_models:build")
    assert m.name == "my-meter"
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", "my_models:build", "--data", str(data), "--crop", "eigen", "--out", str(out)]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    # the same network as meter-xxs-nyu behind a one-line wrap: the verified numbers (weights README: 0.56 m)
    assert metrics["model"] == "my-meter" and abs(metrics["rmse"] - 0.5604) < 1e-3
    assert (
        main(
            [
                "profile",
                "--model",
                "my_models:build",
                "--input-size",
                "96",
                "128",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--batches",
                "1",
                "--out",
                str(tmp_path / "prof"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "prof" / "profile.json").read_text())["my-meter"]["params"] == 713_464


def test_entry_point_errors(tmp_path, monkeypatch, capsys):
    from depthscope.cli import main

    _in_dir_with_entry_module(tmp_path, monkeypatch)
    for spec, message in (
        ("no_such_module:build", "cannot import 'no_such_module'"),
        ("my_models:nothing", "has no function 'nothing'"),
        ("my_models:bare", "returned METER, not a DepthModel"),
    ):
        assert main(["profile", "--model", spec, "--out", str(tmp_path / "p")]) == 2
        assert message in capsys.readouterr().err
    # the user's own code failing or exiting: one line, in every command, never a traceback nor a silent exit 0
    (tmp_path / "bad_models.py").write_text(
        "def boom():\n    raise ValueError('bad config in my factory')\ndef leave():\n    raise SystemExit(0)\n"
    )
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('broken at import')\n")
    images = str(Path(os.environ["DEPTHSCOPE_DATA"]) / "nyu_sample" / "image_0.png")
    for argv, message in (
        (
            ["predict", "--images", images, "--out", str(tmp_path / "pr")],
            "'bad_models:boom' raised ValueError: bad config in my factory",
        ),
        (["optimize", "--method", "int8", "--out", str(tmp_path / "o")], "'bad_models:boom' raised ValueError"),
        (["predict", "--images", images, "--out", str(tmp_path / "pr")], "'bad_models:leave' raised SystemExit: 0"),
        (["profile", "--out", str(tmp_path / "p")], "importing broken_module raised RuntimeError: broken at import"),
    ):
        spec = message.split("'")[1] if "'" in message else "broken_module:build"
        assert main([*argv, "--model", spec]) == 2
        one_line_error(capsys.readouterr().err, message)


def test_a_network_without_tensors_runs_on_the_cpu(nyu):
    """A wrapped module with no parameters or buffers (e.g. a runtime session) is evaluated, not a StopIteration."""

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 1, x.shape[2], x.shape[3]), 2.5)  # 2.5 m everywhere

    model = wrap(Constant(), input_size=(48, 64), mean=None, std=None, name="constant")
    assert model.device == torch.device("cpu")
    res = ds.evaluate(model, nyu, limit=1)
    gt = nyu[0].depth
    valid = gt > 0
    crop = torch.zeros_like(valid)
    crop[45:471, 41:601] = True  # the Eigen crop of a 480x640 NYU image
    valid &= crop & (gt <= 10.0)
    assert res.metrics["mae"] == pytest.approx(float((gt[valid] - 2.5).abs().mean()), rel=1e-5)


def test_a_model_optimised_from_an_entry_point_loads_only_with_the_entry_point_typed(tmp_path, monkeypatch, capsys):
    """The checkpoint's recipe names ``my_models:build``; the file alone may not run it (one error saying what
    to type), ``--model my_models:build --weights FILE`` rebuilds it with the file's tensors, and another typed
    entry point is refused."""
    from safetensors.torch import load_file

    from depthscope.cli import main
    from depthscope.models import load_model
    from depthscope.models.optimized import read_recipe

    _in_dir_with_entry_module(tmp_path, monkeypatch)
    (tmp_path / "my_models.py").write_text(ENTRY + "\n\ndef other(pretrained=True):\n    return build()\n")
    out = tmp_path / "pyra"
    argv = ["optimize", "--model", "my_models:build", "--method", "pyra", "--steps", "1", "--e2e-steps", "1",
            "--batch", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    path = str(out / "model.safetensors")
    capsys.readouterr()
    assert main(["profile", "--model", path, "--out", str(tmp_path / "p")]) == 2
    assert f"type it: --model my_models:build --weights {path}" in capsys.readouterr().err
    model = load_model("my_models:build", weights=path)
    assert model.name == "my-meter+pyra"
    saved = load_file(path)
    assert all(torch.equal(saved[k], v) for k, v in model.net.state_dict().items())
    assert main(["profile", "--model", "my_models:other", "--weights", path, "--out", str(tmp_path / "p")]) == 2
    assert "was optimised from 'my_models:build', not from 'my_models:other'" in capsys.readouterr().err
    # ... and is optimised again the same way: the recipe grows by one step and keeps its base
    again = tmp_path / "pyra+prune"
    argv = ["optimize", "--model", "my_models:build", "--weights", path, "--method", "prune", "--ratio", "0.3",
            "--steps", "1", "--e2e-steps", "1", "--batch", "1", "--out", str(again)]  # fmt: skip
    assert main(argv) == 0
    recipe = read_recipe(again / "model.safetensors")
    assert recipe["base"] == "my_models:build" and [s["method"] for s in recipe["steps"]] == ["pyra", "prune"]
    pruned = load_model("my_models:build", weights=again / "model.safetensors")
    assert pruned.name == "my-meter+pyra+prune0.3"
    assert sum(p.numel() for p in pruned.net.parameters()) < 0.75 * sum(p.numel() for p in model.net.parameters())
    capsys.readouterr()
    argv[2] = "my_models:other"
    assert main(argv) == 2
    assert "was optimised from 'my_models:build', not from 'my_models:other'" in capsys.readouterr().err
