"""PixelFormer: key/shape parity with the official large07 checkpoint, official-format loading, costs."""

import json
import os
from pathlib import Path

import pytest
import torch

from depthscope.errors import CheckpointError
from depthscope.models import load_model
from depthscope.models.pixelformer import PixelFormer

MANIFEST = Path(os.environ["DEPTHSCOPE_WEIGHTS"]) / "pixelformer" / "pixelformer_large07_keys.json"


def test_large07_state_dict_matches_official_manifest():
    """Every name and shape of the official DataParallel state_dict (485 tensors), 270,895,920 parameters."""
    official = {k.removeprefix("module."): v for k, v in json.loads(MANIFEST.read_text()).items()}
    with torch.device("meta"):
        net = PixelFormer("large07")
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert sorted(set(ours) ^ set(official)) == []
    assert {k: v for k, v in ours.items() if official[k] != v} == {}
    assert len(ours) == 485
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 270_895_920


def test_official_checkpoint_layout_loads(tmp_path):
    """A file laid out like the authors' (dict with "model" = DataParallel state_dict) loads exactly."""
    torch.manual_seed(0)
    src = PixelFormer("tiny07", max_depth=10.0)
    path = tmp_path / "nyu.pth"
    torch.save({"model": {"module." + k: v for k, v in src.state_dict().items()}, "optimizer": {}}, path)
    model = load_model("pixelformer-tiny07", weights=path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.net(x), src.eval()(x))
    assert model.info.weights == str(path)


def test_missing_checkpoint_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTHSCOPE_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DEPTHSCOPE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError) as e:
        load_model("pixelformer-large07-nyu")
    msg = str(e.value)
    assert "pixelformer/nyu.pth" in msg and "DEPTHSCOPE_WEIGHTS" in msg and "ashutosh1807/PixelFormer" in msg


def test_profile_large07_flops_without_weights(tmp_path):
    """FLOPs at 480x640 within 5 % of 553.1 G, the official architecture's count with FlopCounterMode."""
    from depthscope.cli import main

    assert (
        main(
            [
                "profile",
                "--model",
                "pixelformer-large07-nyu",
                "--input-size",
                "480",
                "640",
                "--counts-only",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    row = json.loads((tmp_path / "profile.json").read_text())["pixelformer-large07-nyu"]
    assert abs(row["flops"] / 553.1e9 - 1) < 0.05
    assert row["params"] == 270_895_920
    assert row["weights"].startswith("none")
