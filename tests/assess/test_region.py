"""The perturbation region: pixels outside it are never ranked nor perturbed by any perturbation metric, its
fractions count its own pixels, and a model that reads only the image frame (as METER-XXS-NYU largely does) gives
flat curves when the region is the evaluation crop."""

import math

import pytest
import torch

from depthscope.assess import AssessConfig
from depthscope.assess.fidelity import NoiseStream, SubsetStream, af_perturbation
from depthscope.assess.perturbation import perturbation_curves, perturbed_batch, region_mask, region_ranks
from depthscope.assess.run import assess_image
from depthscope.errors import InputError
from depthscope.explain import target_model
from depthscope.models import wrap
from depthscope.probe.edits import fill_ring

H, W = 48, 64


class FrameDepth(torch.nn.Module):
    """Depth 1 + 4 x (mean intensity of the outer 8-px ring), everywhere."""

    def forward(self, x):
        ring = torch.ones(x.shape[-2:], dtype=torch.bool)
        ring[8:-8, 8:-8] = False
        return (1 + 4 * x.mean(1)[:, ring].mean(1)).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])


def test_region_ranks_count_region_pixels_and_leave_the_rest_alone():
    score = torch.rand(H, W, generator=torch.Generator().manual_seed(0))
    region = torch.zeros(H, W, dtype=torch.bool)
    region[5:40, 7:50] = True
    n = int(region.sum())
    for patch in (1, 8):
        ranks = region_ranks(score, region, patch, seed=3)
        for order, r in ranks.items():
            assert bool(torch.isinf(r[~region]).all()), order
            inside = r[region]
            assert float(inside.min()) == 0 and float(inside.max()) < n, order
            x = torch.rand(1, 3, H, W)
            for f in (0.1, 0.5, 1.0):
                out = perturbed_batch(x, [r], [f], torch.zeros_like(x), n_pixels=n)
                changed = (out != x).any(1)[0]
                assert not bool(changed[~region].any())  # nothing outside the region, ever
                # whole patches are taken until the share is reached: at least f of the region, at most a patch more
                assert f * n - 1e-6 <= int(changed.sum()) + (x == 0).all(1)[0][region].sum() <= f * n + patch * patch
    # MoRF of the map is LeRF of the inverted map, pixel for pixel (no ties in a continuous map)
    morf, inverted = region_ranks(score, region), region_ranks(score.max() - score, region)
    assert torch.equal(morf["morf"], inverted["lerf"]) and torch.equal(morf["lerf"], inverted["morf"])


def test_a_frame_reading_model_has_flat_curves_inside_the_crop_and_steep_ones_over_the_whole_image():
    model = wrap(FrameDepth(), input_size=(H, W), mean=None, std=None, unit="m")
    x = fill_ring(torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1)), 8, "white")
    score = torch.rand(H, W, generator=torch.Generator().manual_seed(2))
    inner = region_mask("8,8,56,40", H, W)
    curves = perturbation_curves(model, x, score, replacement="black", patch=4, region=inner)
    assert all(v == 0 for o in ("morf", "lerf", "random") for v in curves.rmse[o])
    full = perturbation_curves(model, x, score, replacement="black", patch=4)
    assert max(full.rmse["random"]) > 0.5 and max(full.rmse["lerf"]) > 0.5  # the frame was reached


def test_infidelity_and_faithfulness_draw_only_inside_the_region():
    model = wrap(FrameDepth(), input_size=(H, W), mean=None, std=None, unit="m")
    x = torch.rand(1, 3, H, W)
    region = region_mask("8,8,56,40", H, W)
    fm = target_model(model, x, "mean")
    draws = NoiseStream(fm, x, 0.1, seed=0, chunk_size=4, control_variate=False, region=region).draw(6)
    assert float(draws.perturbation[..., ~region].abs().max()) == 0 and float(draws.perturbation.abs().max()) > 0
    assert torch.allclose(draws.drop, torch.zeros(6, dtype=draws.drop.dtype))  # the frame model never sees it
    stream = SubsetStream(fm, x, 0.5, 8, seed=0, chunk_size=4, region=region)
    assert set(stream.cells.tolist()) == {r * 8 + c for r in range(1, 5) for c in range(1, 7)}  # whole squares
    subsets = stream.draw(4)
    assert float(subsets.drop.abs().max()) < 1e-4  # float32 rounding of a ~5 m target only: the frame untouched
    with pytest.raises(InputError, match="holds no whole 16x16 square"):
        SubsetStream(fm, x, 0.5, 16, region=region_mask("8,8,20,20", H, W))


def test_the_default_region_is_the_models_crop_and_bad_regions_are_one_line(meter_nyu, nyu):
    assert AssessConfig().perturb_region == "crop"
    crop = region_mask("crop", 480, 640, "eigen")
    assert int(crop.sum()) == (471 - 45) * (601 - 41) and not bool(crop[:45].any())  # NYU's frame left out
    assert region_mask("full", 480, 640, "eigen") is None
    for bad in ("0,0,0,10", "10,10,5,20", "0,0,700,10", "a,b,c,d", "1,2,3"):
        with pytest.raises(InputError, match="--perturb-region"):
            region_mask(bad, 480, 640)
    with pytest.raises(InputError, match="--perturb-region takes full, crop or x0,y0,x1,y1 .*got '1,2,3'"):
        AssessConfig(perturb_region="1,2,3")
    cfg = AssessConfig(methods=("random",), metrics=("curves",), perturb_region="0,0,700,700")
    with pytest.raises(InputError, match="inside the 640x480 image"):
        list(assess_image(meter_nyu, nyu[0].image, cfg))


def test_an_inverted_map_scores_the_negative_of_the_map_and_random_scores_near_zero(meter_nyu, nyu):
    x = nyu[0].image[None]
    crop = region_mask("crop", 480, 640, "eigen")
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 1, 30, 40, generator=g), size=(480, 640), mode="bilinear")[
        0, 0
    ]
    a = perturbation_curves(meter_nyu, x, smooth, replacement="blur", patch=8, region=crop, chunk_size=8)
    b = perturbation_curves(meter_nyu, x, smooth.max() - smooth, replacement="blur", patch=8, region=crop, chunk_size=8)
    af_a, af_b = af_perturbation(a.rmse["morf"], a.rmse["lerf"]), af_perturbation(b.rmse["morf"], b.rmse["lerf"])
    assert af_b == pytest.approx(-af_a, abs=1e-6) and not math.isclose(af_a, 0, abs_tol=1e-3)


def test_fragmentation_of_the_perturbed_sets_by_hand():
    from depthscope.assess.perturbation import fragmentation, rank_map

    r = torch.full((32, 32), float("inf"))
    r[8:16, 8:16] = 0  # one 8x8 patch inside the image: 32 boundary edges / 64 pixels
    r[0, 0] = 0  # one isolated pixel in the corner: 2 inner edges
    assert fragmentation(r, [0.0, 0.01, 1.0]) == pytest.approx([0.0, 34 / 65, 34 / 65])
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2  # isolated pixels: 4 edges each inside
    ranks = rank_map(checker.float())  # the 512 ones first
    # the ones: 450 interior pixels with 4 neighbours, 60 on the border with 3, 2 corners with 2; all neighbours zero
    assert fragmentation(ranks, [0.5])[0] == pytest.approx((450 * 4 + 60 * 3 + 2 * 2) / 512, rel=1e-9)
    # patches make less fragmented sets than pixels: the curves record it per order and fraction
    score = torch.rand(64, 64, generator=torch.Generator().manual_seed(0))
    pix, patch = fragmentation(rank_map(score), [0.1])[0], fragmentation(rank_map(score, 8), [0.1])[0]
    assert patch < 0.5 < pix
