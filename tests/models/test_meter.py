import os
from pathlib import Path

import pytest
import torch

from depthscope.errors import CheckpointError, UnknownNameError
from depthscope.models import list_models, load_model, read_state_dict
from depthscope.models.meter import METER

WEIGHTS = Path(os.environ["DEPTHSCOPE_WEIGHTS"]) / "meter"


@pytest.mark.parametrize("fname", ["meter_xxs_nyu.pth", "meter_xxs_kitti.pth"])
def test_meter_xxs_state_dict_matches_authors_checkpoint(fname):
    ckpt = torch.load(WEIGHTS / fname, map_location="cpu", weights_only=True)
    ours = METER("xxs").state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ckpt.items()}


def test_meter_param_counts():
    # METER-XXS: 713,464 (weights README); XS and S: 1.45 M and 3.29 M in the METER paper.
    counts = {s: sum(p.numel() for p in METER(s).parameters()) for s in ("xxs", "xs", "s")}
    assert counts["xxs"] == 713_464
    assert round(counts["xs"] / 1e6, 2) == 1.45
    assert round(counts["s"] / 1e6, 2) == 3.30  # paper: 3.29 M


def test_raw_output_is_quarter_resolution_nyu_and_kitti(meter_nyu):
    kitti = load_model("meter-xxs-kitti")
    assert meter_nyu.net(torch.zeros(1, 3, 192, 256)).shape == (1, 1, 48, 64)
    assert kitti.net(torch.zeros(1, 3, 192, 636)).shape == (1, 1, 48, 160)  # weights README: 1x1x48x160


def test_kitti_wrapper_kb_crop_and_decimetres():
    kitti = load_model("meter-xxs-kitti")
    img = torch.rand(1, 3, 375, 1242)
    out = kitti(img)
    assert out.shape == (1, 1, 375, 1242)
    # KB crop: bottom 352 rows, central 1216 columns -> rows 23.., cols 13..1228; zero (invalid) outside
    assert (out[..., :23, :] == 0).all() and (out[..., :, :13] == 0).all() and (out[..., :, 1229:] == 0).all()
    crop = img[..., 23:, 13:1229]
    x = torch.nn.functional.interpolate(crop, size=(192, 636), mode="bilinear", antialias=True)  # no mean/std
    raw = kitti.net(x)
    ref = torch.nn.functional.interpolate(raw * 0.1, size=(352, 1216), mode="bilinear")
    torch.testing.assert_close(out[..., 23:, 13:1229], ref)


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError, match="meter-xxs-nyu"):
        load_model("meter-xxl")
    assert {"meter-xxs-nyu", "meter-xxs-kitti", "meter-xs", "meter-s"} <= set(list_models())


def test_mismatched_checkpoint_names_keys(tmp_path):
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatches: decoder.conv2d_in.weight: checkpoint \(64, 160, 1, 1\) vs model \(128, 192, 1, 1\)",
    ):
        load_model("meter-xs", weights=WEIGHTS / "meter_xxs_nyu.pth")
    sd = read_state_dict(WEIGHTS / "meter_xxs_nyu.pth")
    sd.pop("decoder.conv2d_out.weight")
    sd["decoder.extra"] = torch.zeros(1)
    torch.save({"model": {"module." + k: v for k, v in sd.items()}}, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError, match=r"missing keys: decoder.conv2d_out.weight.*unexpected keys: decoder.extra"
    ):
        load_model("meter-xxs-nyu", weights=tmp_path / "bad.pth")


def test_checkpoint_never_executes_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    import pickle

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError, match="evil.pth"):
        load_model("meter-xxs-nyu", weights=tmp_path / "evil.pth")
    (tmp_path / "corrupt.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        load_model("meter-xxs-nyu", weights=tmp_path / "corrupt.pth")


def test_safetensors_checkpoint_roundtrip(tmp_path, meter_nyu):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in meter_nyu.net.state_dict().items()}, tmp_path / "m.safetensors")
    m = load_model("meter-xxs-nyu", weights=tmp_path / "m.safetensors")
    x = torch.rand(1, 3, 96, 128)
    torch.testing.assert_close(m(x), meter_nyu(x))
