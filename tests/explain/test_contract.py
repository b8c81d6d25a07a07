"""The contract every registered attribution method keeps, checked for each one on METER-XXS with real weights and
a real NYU image: shape and finiteness, the same map for the same seed, another map for another seed where the
method declares ``seeded``, and the int8 refusal exactly where it declares ``needs_grad``. A method registered
later is checked here without a line added."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.explain import METHODS, explain

# Options that keep each method quick on a 120x160 image; the second set makes a seeded method use its seed
# (IG and Occlusion draw only for a noise baseline).
QUICK = {
    "integrated_gradients": {"n_steps": 4, "tolerance": None},
    "smoothgrad": {"n_samples": 4},
    "occlusion": {"window": 40, "stride": 40},
}
RANDOMISED = {"integrated_gradients": {"baseline": "noise"}, "occlusion": {"baseline": "noise"}}


@pytest.fixture(scope="module")
def image(nyu):
    return F.interpolate(nyu[1].image[None], size=(120, 160), mode="bilinear", antialias=True).clamp(0, 1)


@pytest.fixture(scope="module")
def int8_model(meter_nyu, nyu, tmp_path_factory):
    from depthscope.models import load_model
    from depthscope.models.optimized import save_optimized
    from depthscope.models.quantized import calibrate, convert_int8, prepare_int8

    x = meter_nyu.prepare(nyu[0].image[None])
    observed = prepare_int8(meter_nyu.net, x)
    calibrate(observed, [x])
    path = tmp_path_factory.mktemp("int8") / "model.safetensors"
    step = {"method": "int8", "input_size": [192, 256], "storage": "pt2e", "keep_float": ["decoder.ups_block_3"]}
    save_optimized(path, convert_int8(observed), "meter-xxs-nyu", [step], "meter+int8")
    return load_model(str(path))


def run(model, image, name, seed, target="grid:2", **extra):
    options = {**QUICK.get(name, {}), **extra}
    return explain(model, image, name, target, {name: options} if options else None, seed=seed)[name]


@pytest.mark.parametrize("name", METHODS.names())
def test_shape_finite_and_deterministic(meter_nyu, image, name):
    a, b = run(meter_nyu, image, name, seed=3), run(meter_nyu, image, name, seed=3)
    assert a.method == name
    assert a.raw.dim() == 4 and a.raw.shape[0] == 4 and a.raw.shape[1] in (1, 3) and a.raw.shape[-2:] == (120, 160)
    assert tuple(a.magnitude.shape) == tuple(a.signed.shape) == (4, 120, 160)
    assert torch.isfinite(a.raw).all() and (a.magnitude >= 0).all()
    assert a.magnitude.flatten(1).amax(1).gt(0).all(), "every target's map is non-zero"
    assert torch.equal(a.raw, b.raw)


@pytest.mark.parametrize("name", [n for n in METHODS.names() if METHODS.get(n).seeded])
def test_seeded_methods_draw_from_the_seed(meter_nyu, image, name):
    a = run(meter_nyu, image, name, seed=0, target="mean", **RANDOMISED.get(name, {}))
    b = run(meter_nyu, image, name, seed=1, target="mean", **RANDOMISED.get(name, {}))
    assert not torch.allclose(a.raw, b.raw)


@pytest.mark.parametrize("name", METHODS.names())
def test_int8_refusal_matches_needs_grad(int8_model, image, name):
    if METHODS.get(name).needs_grad:
        with pytest.raises(InputError, match=f"runs int8 kernels, which have no gradients: {name} cannot run"):
            run(int8_model, image, name, seed=0, target="mean")
    else:
        a = run(int8_model, image, name, seed=0, target="mean")
        assert torch.isfinite(a.raw).all() and a.raw.shape[-2:] == (120, 160)


def test_specs_are_declared():
    specs = {n: (s.needs_grad, s.seeded, s.uses_layer) for n, s in ((n, METHODS.get(n)) for n in METHODS.names())}
    assert specs == {
        "attention_rollout": (False, False, False),
        "gradcam": (True, False, True),
        "input_x_gradient": (True, False, False),
        "integrated_gradients": (True, True, False),
        "occlusion": (False, True, False),
        "random": (False, True, False),
        "saliency": (True, False, False),
        "smoothgrad": (True, True, False),
    }
    ig = METHODS.get("integrated_gradients").defaults  # one default everywhere: converged to 2 % completeness
    assert (ig["n_steps"], ig["tolerance"], ig["max_steps"]) == (16, 0.02, 150)


def test_unknown_option_names_the_valid_ones(meter_nyu, image):
    with pytest.raises(InputError, match="smoothgrad has no option 'n_sample'; its options: n_samples, sigma"):
        explain(meter_nyu, image, "smoothgrad", options={"smoothgrad": {"n_sample": 4}})


def test_gradcam_layer_comes_from_the_model_config(meter_nyu, image):
    from depthscope.models import wrap

    assert meter_nyu.info.gradcam_layer == "encoder.conv2"
    default = explain(meter_nyu, image, "gradcam")["gradcam"]
    named = explain(meter_nyu, image, "gradcam", options={"gradcam": {"layer": "encoder.conv2"}})["gradcam"]
    assert torch.equal(default.raw, named.raw) and default.info["layer"] == "encoder.conv2"
    bare = wrap(meter_nyu.net, input_size=(192, 256), unit="cm")
    with pytest.raises(InputError, match="gradcam needs a layer and this model declares none"):
        explain(bare, image, "gradcam")


def test_assess_gives_each_image_its_own_random_map(meter_nyu, nyu, nyu_dir, tmp_path):
    """The bug this contract fixes: assess ran random and smoothgrad with seed 0 on every image. Image 1's row
    must be the score of the map drawn with seed 1, not with seed 0."""
    import csv

    from depthscope.assess import AssessConfig, af_depth_correlation, assess

    cfg = AssessConfig(methods=("random",), metrics=("af_depth_correlation",))
    assess([meter_nyu], nyu_dir, cfg, tmp_path, limit=2)
    got = float(list(csv.DictReader(open(tmp_path / "results.csv")))[1]["af_depth_correlation"])
    image = nyu[1].image[None]
    with torch.no_grad():
        depth = meter_nyu(image)[0, 0]
    by_seed = [
        af_depth_correlation(explain(meter_nyu, image, "random", seed=s)["random"].magnitude[0], depth) for s in (0, 1)
    ]
    assert got == pytest.approx(by_seed[1], abs=1e-12) and by_seed[0] != pytest.approx(by_seed[1], abs=1e-6)
