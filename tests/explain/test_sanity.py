import pytest
import torch

from depthscope.explain.sanity import cascading_randomization
from depthscope.ops.stats import map_ssim as ssim
from depthscope.ops.stats import spearman

OPTIONS = {
    "integrated_gradients": {"n_steps": 8, "tolerance": None, "chunk_size": 8},
    "smoothgrad": {"n_samples": 4, "chunk_size": 4},
}


def test_spearman_and_ssim_references():
    a = torch.arange(256.0).view(16, 16)
    assert spearman(a, a**3) == pytest.approx(1.0)  # monotone transform keeps ranks
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, torch.rand(16, 16, generator=torch.Generator().manual_seed(0))) < 0.5


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "smoothgrad"])
def test_gradient_maps_decorrelate_once_decoder_and_last_encoder_stage_are_random(meter_nyu, small_image, method):
    rows = cascading_randomization(
        meter_nyu, small_image, method, options=OPTIONS.get(method), stop_after="encoder.conv2"
    )
    assert [r["block"] for r in rows][:2] == ["decoder.conv2d_out", "decoder.ups_block_3"]
    assert rows[-1]["block"] == "encoder.conv2"
    assert rows[-1]["spearman"] < 0.5, rows


def test_input_x_gradient_keeps_image_structure_until_the_encoder_is_random(meter_nyu, small_image):
    """Input x gradient carries the image itself: after decoder + encoder.conv2 it still correlates (~0.52,
    reported), and only decorrelates once the whole encoder is randomised."""
    rows = cascading_randomization(meter_nyu, small_image, "input_x_gradient")
    by_block = {r["block"]: r["spearman"] for r in rows}
    assert by_block["encoder.conv2"] < by_block["decoder.conv2d_out"]
    assert rows[-1]["block"] == "encoder.conv1" and rows[-1]["spearman"] < 0.5, rows
