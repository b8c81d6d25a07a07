"""Shortcut probes: each edit checked by hand, both directions on toy models whose use of the frame is known, and
the frame effect of METER-XXS-NYU on the real weights."""

import pytest
import torch
from cli_errors import one_line_error

from depthscope.cli import main
from depthscope.errors import InputError, UnknownNameError
from depthscope.models import wrap
from depthscope.probe import PROBES, probe, probe_image
from depthscope.probe.edits import fill_ring, shift_content, zoom_content

H, W = 64, 80


class FrameDepth(torch.nn.Module):
    """Depth 1 + 4 x (mean intensity of the outer 8-px ring): reads the frame and nothing else."""

    def forward(self, x):
        ring = torch.ones(x.shape[-2:], dtype=torch.bool)
        ring[8:-8, 8:-8] = False
        v = x.mean(1)[:, ring].mean(1)
        return (1 + 4 * v).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])


class CentreDepth(torch.nn.Module):
    """Depth 1 + 4 x (mean intensity of the central 16x16 square): never reads the frame."""

    def forward(self, x):
        h, w = x.shape[-2:]
        v = x.mean(1)[:, h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8].mean((1, 2))
        return (1 + 4 * v).view(-1, 1, 1, 1).expand(-1, 1, h, w)


def framed_image(seed=0):
    """Random content with a white 8-px frame, as NYU images have."""
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(seed))
    return fill_ring(x, 8, "white")


def toy(net):
    return wrap(net, input_size=(H, W), mean=None, std=None, unit="m", name=type(net).__name__)


def test_edits_do_what_they_say():
    x = torch.arange(H * W, dtype=torch.float32).view(1, 1, H, W).expand(1, 3, H, W) / (H * W)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    black = fill_ring(x, 8, "black")
    assert float(black[..., :8, :].abs().sum()) == 0 and torch.equal(black[inner], x[inner])
    rep = fill_ring(x, 8, "replicate")
    assert torch.equal(rep[0, 0, 3, 20], x[0, 0, 8, 20]) and torch.equal(rep[0, 0, 30, 2], x[0, 0, 30, 8])
    mean = fill_ring(x, 4, "mean")
    assert torch.allclose(mean[0, :, 0, 0], x[0].mean((1, 2)))
    moved = shift_content(x, 2, 3)  # down 2, right 3: pixel (y, x) comes from (y - 2, x - 3)
    assert torch.equal(moved[0, 0, 10, 10], x[0, 0, 8, 7]) and torch.equal(moved[0, 0, 0, 0], x[0, 0, 0, 0])
    assert torch.allclose(zoom_content(x, 1.0), x)
    for name in ("shift_interior_6px", "zoom_interior_2.5pct", "content_up_5pct", "content_down_5pct"):
        edited = PROBES.get(name).edit(x)
        ring = torch.ones(H, W, dtype=torch.bool)
        ring[8:-8, 8:-8] = False
        assert torch.equal(edited[..., ring], x[..., ring]), name  # the frame is kept exactly
        assert not torch.equal(edited, x), name


def test_a_model_that_reads_only_the_frame_is_caught_and_one_that_ignores_it_is_not():
    x = framed_image()
    frame_model, centre_model = toy(FrameDepth()), toy(CentreDepth())
    names = ["frame8_black", "frame8_white", "frame16_black", "shift_interior_6px", "zoom_interior_2.5pct"]
    probes = [PROBES.get(n) for n in names]
    on_frame = probe_image(frame_model, x, probes)
    # by hand: white frame -> depth 5; black 8-px ring -> depth 1: change (1 - 5) / 5 = -0.8, RMSE 4 m
    assert on_frame["frame8_black"]["mean_depth_m"] == pytest.approx(5.0, rel=1e-6)
    assert on_frame["frame8_black"]["mean_depth_change"] == pytest.approx(-0.8, rel=1e-6)
    assert on_frame["frame8_black"]["depth_rmse_m"] == pytest.approx(4.0, rel=1e-6)
    assert on_frame["frame8_white"]["mean_depth_change"] == pytest.approx(0.0, abs=1e-7)  # already white
    assert on_frame["frame16_black"]["mean_depth_change"] == pytest.approx(-0.8, rel=1e-6)
    for control in ("shift_interior_6px", "zoom_interior_2.5pct"):
        assert on_frame[control]["mean_depth_change"] == pytest.approx(0.0, abs=1e-7)  # the frame kept
    on_centre = probe_image(centre_model, x, probes)
    for frame in ("frame8_black", "frame8_white", "frame16_black"):
        assert on_centre[frame]["mean_depth_change"] == pytest.approx(0.0, abs=1e-7)
        assert on_centre[frame]["depth_rmse_m"] == pytest.approx(0.0, abs=1e-6)


def test_meter_nyu_uses_the_frame_and_not_the_position_of_the_content(meter_nyu, nyu_dir, tmp_path, capsys):
    assert main(["probe", "--data", str(nyu_dir), "--limit", "3", "--out", str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "meter-xxs-nyu: " in err and "frame changes the mean depth by +" in err and "the image border" in err
    res = probe(meter_nyu, nyu_dir, "frame8_blur,frame8_replicate,shift_interior_6px,zoom_interior_2.5pct", limit=3)
    by = {r["probe"]: r for r in res.summary}
    # image 0: 3.05 m -> 5.66 m with the 8-px ring blurred, 5.57 m replicated from the interior (measured)
    assert by["frame8_blur"]["mean_depth_change_mean"] > 0.8 and by["frame8_replicate"]["mean_depth_change_mean"] > 0.7
    assert all(v > 0.7 for v in by["frame8_blur"]["per_image_change"])
    for control in ("shift_interior_6px", "zoom_interior_2.5pct"):
        assert abs(by[control]["mean_depth_change_mean"]) < 0.05
    assert len(res.rows) == 12 and (tmp_path / "p" / "summary.csv").exists()


def test_bad_probe_input_is_one_line(meter_nyu, nyu_dir, capsys, tmp_path):
    with pytest.raises(UnknownNameError, match="unknown probe 'frame9_blur'; valid probes: brighter_20pct"):
        probe(meter_nyu, nyu_dir, "frame9_blur")
    with pytest.raises(InputError, match="--threshold must be a number > 0"):
        probe(meter_nyu, nyu_dir, threshold=0)
    assert main(["probe", "--probes", ",", "--out", str(tmp_path / "x")]) == 2
    one_line_error(capsys.readouterr().err, "--probes names no probe")
