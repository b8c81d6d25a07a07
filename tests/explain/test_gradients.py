import pytest
import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency

from depthscope.explain import explain, target_model
from depthscope.explain.gradients import integrated_gradients, smoothgrad
from depthscope.seeding import generator

TARGETS = ["mean", "box:40,60,120,200", "pixel:100,150"]


@pytest.mark.parametrize("target", TARGETS)
def test_saliency_equals_captum(meter_nyu, small_image, target):
    fm = target_model(meter_nyu, small_image, target)
    ours = explain(meter_nyu, small_image, "saliency", target)["saliency"]
    ref = Saliency(fm).attribute(small_image, target=0, abs=True)  # Captum needs a scalar per sample: column 0
    torch.testing.assert_close(ours.raw.abs(), ref, rtol=1e-4, atol=1e-10)
    ixg = InputXGradient(fm).attribute(small_image, target=0)
    torch.testing.assert_close(
        explain(meter_nyu, small_image, "input_x_gradient", target)["input_x_gradient"].raw, ixg, rtol=1e-4, atol=1e-10
    )


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_integrated_gradients_equals_captum(meter_nyu, small_image, target, method):
    fm = target_model(meter_nyu, small_image, target)
    ours = integrated_gradients(fm, small_image, n_steps=16, method=method, tolerance=None, chunk_size=8)
    ref, delta = IntegratedGradients(fm).attribute(
        small_image,
        baselines=torch.zeros_like(small_image),
        target=0,
        n_steps=16,
        method=method,
        internal_batch_size=8,
        return_convergence_delta=True,
    )
    torch.testing.assert_close(ours.raw, ref, rtol=1e-4, atol=1e-6 * ref.abs().max().item())
    # Captum's convergence delta is sum(attr) - (F(x) - F(b)); ours is its relative magnitude.
    assert ours.info["completeness_error"][0] == pytest.approx(abs(delta.item()) / abs(ours.info["delta"][0]), rel=1e-3)


def test_grid_targets_share_the_forward_and_match_single_targets(meter_nyu, small_image):
    grid = explain(meter_nyu, small_image, "saliency", "grid:2")["saliency"]
    assert grid.raw.shape[0] == 4
    fm = target_model(meter_nyu, small_image, "grid:2")
    for t in range(4):
        ref = Saliency(fm).attribute(small_image, target=t, abs=False)
        torch.testing.assert_close(grid.raw[t : t + 1], ref, rtol=1e-4, atol=1e-10)


def test_adaptive_ig_meets_tolerance_and_reports_steps(meter_nyu, small_image):
    fm = target_model(meter_nyu, small_image, "mean")
    fixed = integrated_gradients(fm, small_image, n_steps=50, tolerance=None, chunk_size=8)
    adaptive = integrated_gradients(fm, small_image, n_steps=24, tolerance=0.02, chunk_size=8)
    assert adaptive.info["completeness_error"][0] <= 0.02 < fixed.info["completeness_error"][0]
    assert 24 < adaptive.info["n_steps"] <= 150
    # the reported error is the real one: recompute from the attributions and the model
    with torch.no_grad():
        delta = (fm(small_image) - fm(torch.zeros_like(small_image)))[0, 0]
    assert abs(adaptive.raw.sum() - delta) / abs(delta) == pytest.approx(
        adaptive.info["completeness_error"][0], rel=1e-3
    )


def test_smoothgrad_equals_captum_noise_tunnel(meter_nyu, small_image):
    fm = target_model(meter_nyu, small_image, "mean")
    ours = smoothgrad(fm, small_image, n_samples=4, sigma=0.1, seed=3, chunk_size=2)
    torch.manual_seed(0)
    noise = 0.1 * torch.randn((4, *small_image.shape[1:]), generator=generator(3, "smoothgrad"))
    ref = torch.stack([Saliency(fm).attribute(small_image + n, target=0, abs=False)[0] for n in noise]).mean(0)
    # Captum's NoiseTunnel draws its own noise, so the same noise is fed to Captum's Saliency here
    torch.testing.assert_close(ours.raw[0], ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())


def test_trapezoid_is_a_proper_rule_on_unit_interval():
    # Captum's riemann_trapezoid weights sum to (n-1)/n; ours integrate constants exactly: sum 1, ends halved.
    from depthscope.explain.gradients import integration_points

    a, w = integration_points(5, "riemann_trapezoid")
    assert list(a) == [0, 0.25, 0.5, 0.75, 1.0] and list(w) == [0.125, 0.25, 0.25, 0.25, 0.125]


def test_unknown_method_and_bad_target(meter_nyu, small_image):
    from depthscope.errors import InputError, UnknownNameError

    with pytest.raises(UnknownNameError, match="valid attribution methods: attention_rollout"):
        explain(meter_nyu, small_image, "lime")
    with pytest.raises(InputError, match="outside the 240x320 image"):
        explain(meter_nyu, small_image, "saliency", "box:0,0,300,10")
    with pytest.raises(InputError, match="outside"):
        explain(meter_nyu, small_image, "saliency", "pixel:240,0")
