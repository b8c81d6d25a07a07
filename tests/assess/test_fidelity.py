import pytest
import torch

from depthscope.assess import af_depth_correlation, af_perturbation, perturbation_curves, rank_map
from depthscope.explain import explain


def test_af_perturbation_hand_computed():
    # k>0 terms: (2-2)/(4) = 0 and (4-0)/4 = 1 -> mean 0.5; swapped -> -0.5
    assert af_perturbation([0, 2, 4], [0, 2, 0]) == pytest.approx(0.5)
    assert af_perturbation([0, 2, 0], [0, 2, 4]) == pytest.approx(-0.5)


def test_af_depth_correlation_signs():
    d = torch.rand(20, 30) + 1
    assert af_depth_correlation(d * 3, d) == pytest.approx(1.0)
    assert af_depth_correlation(-d, d) == pytest.approx(-1.0)
    d[0, 0] = 0  # pixels without a prediction do not count
    assert af_depth_correlation(torch.where(d > 0, d, torch.tensor(1e6)), d) == pytest.approx(1.0)


def test_rank_map_pixels_and_patches():
    s = torch.tensor([[3.0, 1.0], [2.0, 0.0]])
    assert rank_map(s).tolist() == [[0, 2], [1, 3]]
    s4 = torch.zeros(4, 4)
    s4[2:, 2:] = 1  # bottom-right 2x2 patch most relevant: its 4 pixels rank first
    r = rank_map(s4, patch=2)
    assert (r[2:, 2:] == 0).all() and (r[:2, :2] > 0).all()


@pytest.mark.parametrize(
    "values",
    [
        torch.randn(5000, generator=torch.Generator().manual_seed(0)),
        torch.randint(-3, 3, (5000,), generator=torch.Generator().manual_seed(1)).float(),  # many ties
        torch.tensor([0.0, -0.0, 1.0, -1.0, float("inf"), -float("inf"), 1e-40, -1e-40, 0.0, 3.0e38]),
    ],
)
def test_descending_order_is_torch_stable_argsort(values):
    from depthscope.ops.stats import descending_order

    assert torch.equal(descending_order(values), torch.argsort(values, descending=True, stable=True))


class _MaskedDepth(torch.nn.Module):
    """METER with its prediction removed (0) in the left 40 columns: pixels without a prediction."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x).clone()
        out[..., :40] = 0
        return out


def test_curves_with_ground_truth_and_missing_predictions(meter_nyu, nyu):
    """RMSE, AbsRel and the change of RMSE against ground truth, by the formulas, one image at a time."""
    sample = nyu[2]
    x = torch.nn.functional.interpolate(sample.image[None], size=(120, 160), mode="bilinear", antialias=True)
    gt = torch.nn.functional.interpolate(sample.depth[None, None], size=(120, 160), mode="nearest")[0, 0]
    model = _MaskedDepth(meter_nyu)
    score = torch.rand(120, 160, generator=torch.Generator().manual_seed(2))
    fractions = [0, 0.2, 0.4]
    c = perturbation_curves(model, x, score, fractions=fractions, gt=gt, chunk_size=2)
    with torch.no_grad():
        ref = model(x)[0, 0]
        valid = ref > 0
        both = valid & (gt > 0)
        base = (ref[both] - gt[both]).pow(2).mean().sqrt()
        order = torch.argsort(score.flatten(), descending=True)
        for i, f in enumerate(fractions[1:], 1):
            pert = x.clone().view(3, -1)
            pert[:, order[: int(f * order.numel())]] = x.view(3, -1).mean(1, keepdim=True)
            p = model(pert.view(1, 3, 120, 160))[0, 0]
            d = (p - ref)[valid]
            assert c.rmse["morf"][i] == pytest.approx(d.pow(2).mean().sqrt().item(), rel=1e-4)
            assert c.abs_rel["morf"][i] == pytest.approx((d.abs() / ref[valid]).mean().item(), rel=1e-4)
            gt_rmse = (p[both] - gt[both]).pow(2).mean().sqrt()
            assert c.gt_rmse_change["morf"][i] == pytest.approx((gt_rmse - base).item(), rel=1e-3, abs=1e-5)
    assert c.gt_rmse_change["lerf"][0] == 0 and len(c.gt_rmse_change["random"]) == 3


def test_curves_batched_equal_one_by_one(meter_nyu, small_image):
    score = torch.rand(240, 320, generator=torch.Generator().manual_seed(1))
    c = perturbation_curves(meter_nyu, small_image, score, fractions=[0, 0.1, 0.3], chunk_size=3)
    assert c.rmse["morf"][0] == pytest.approx(0, abs=1e-5) and c.rmse["lerf"][0] == pytest.approx(0, abs=1e-5)
    with torch.no_grad():
        ref = meter_nyu(small_image)[0, 0]
        order = torch.argsort(score.flatten(), descending=True)
        for i, f in enumerate([0.1, 0.3], 1):
            x = small_image.clone().view(3, -1)
            top = order[: int(f * order.numel())]
            x[:, top] = small_image.view(3, -1).mean(1, keepdim=True)
            d = meter_nyu(x.view(1, 3, 240, 320))[0, 0] - ref
            assert c.rmse["morf"][i] == pytest.approx(d.pow(2).mean().sqrt().item(), rel=1e-4)


def _af_means(model, samples, methods, size=None, fractions=(0, 0.1, 0.2, 0.3, 0.4, 0.5), invert=None, **curves):
    scores: dict[str, list[float]] = {}
    for s in samples:
        x = s.image[None]
        if size:
            x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True)
        attrs = explain(
            model,
            x,
            methods,
            options={"integrated_gradients": {"n_steps": 16, "tolerance": None, "chunk_size": 8}}
            if "integrated_gradients" in methods
            else None,
        )
        maps = {k: a.magnitude[0] for k, a in attrs.items()}
        if invert:
            maps[f"inverted_{invert}"] = -maps[invert]  # a deliberately inverted ranking
        for k, m in maps.items():
            c = perturbation_curves(model, x, m, fractions=fractions, chunk_size=3, **curves)
            scores.setdefault(k, []).append(af_perturbation(c.rmse["morf"], c.rmse["lerf"]))
    return {k: sum(v) / len(v) for k, v in scores.items()}


def test_af_random_near_zero_inverted_negative_ig_above_random(meter_nyu, nyu):
    """Mean over the 10 NYU images at 240x320: random ~0, inverted IG negative, IG above random."""
    mean = _af_means(meter_nyu, nyu, ["random", "integrated_gradients"], (240, 320), invert="integrated_gradients")
    print("af_perturbation means (240x320):", mean)
    assert abs(mean["random"]) < 0.1
    assert mean["inverted_integrated_gradients"] < 0
    assert mean["integrated_gradients"] > mean["random"] + 0.1


def test_af_saliency_above_random_at_full_resolution(meter_nyu, nyu):
    """Pixel-level saliency ranks scattered pixels; at 480x640 (default fractions) it beats random."""
    from depthscope.assess import DEFAULT_FRACTIONS

    mean = _af_means(meter_nyu, nyu, ["random", "saliency"], fractions=DEFAULT_FRACTIONS)
    print("af_perturbation means (480x640):", mean)
    assert abs(mean["random"]) < 0.1
    assert mean["saliency"] > mean["random"]


def test_infidelity_equals_captum_on_the_same_draws(meter_nyu, small_image, float32_noise):
    from captum.metrics import infidelity as captum_infidelity

    from depthscope.assess import infidelity_score, noise_draws
    from depthscope.explain import target_model
    from depthscope.explain.gradients import saliency

    fm = target_model(meter_nyu, small_image, "mean")
    attr = saliency(fm, small_image).raw
    draws = noise_draws(fm, small_image, 6, seed=3, symmetric=False, control_variate=False)  # Captum: plain MC

    def perturb(inputs):  # Captum expands the input n_perturb_samples times and perturbs them in one call
        return draws.perturbation, inputs - draws.perturbation

    ref = captum_infidelity(fm, perturb, small_image, attr, target=0, n_perturb_samples=6, normalize=True)
    ours = infidelity_score(draws, attr)
    assert ours.n == 6 and ours.ci_low <= ours.value <= ours.ci_high
    # The drops f(x) - f(x - I) are float32 differences of ~3 m predictions that we and Captum compute in batches
    # of other sizes: each prediction may be off by the model's float32 rounding (measured against float64), so
    # a drop by 2 x 2 of it between the two, and the squared residuals by twice that relative to the drops' size
    # (seen: 1.4e-4 relative on another CPU, against rtol 1e-4 before).
    noise = float32_noise(fm, torch.cat([small_image, small_image - draws.perturbation]))
    rel = 2 * 4 * noise / draws.drop.abs().min().item()
    assert rel < 1e-2  # still far below what a wrong estimator or wrong draws would change (percents)
    assert ours.value == pytest.approx(ref.item(), rel=max(rel, 1e-4))


class _Linear(torch.nn.Module):
    """f(x) = <w, x>: the drop when a set S is replaced by r is exactly sum_S w (x - r)."""

    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        return (x * self.w).sum(dim=(1, 2, 3)).unsqueeze(1)


def test_faithfulness_correlation_is_one_for_the_exact_linear_attribution():
    from depthscope.assess import faithfulness_correlation

    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(1, 3, 64, 48, generator=g), torch.randn(1, 3, 64, 48, generator=g)
    exact = (w * (x - x.mean(dim=(-2, -1), keepdim=True))).sum(1)  # (1, H, W): each pixel's share of the drop
    fe = faithfulness_correlation(_Linear(w), x, exact, n_subsets=20, patch=8, seed=1, chunk_size=5)
    assert fe.value == pytest.approx(1.0, abs=1e-6) and fe.n == 20 and fe.ci_low <= fe.value <= fe.ci_high
    unrelated = faithfulness_correlation(_Linear(w), x, torch.randn(1, 64, 48, generator=g), n_subsets=20, patch=8)
    assert abs(unrelated.value) < 0.7


class _Quadratic(torch.nn.Module):
    """f(x) = <w, x> + c |x|^2: f(x+I) - f(x-I) = 2 <grad f(x), I> exactly; f(x) - f(x-I) adds -c |I|^2."""

    def __init__(self, w, c):
        super().__init__()
        self.w, self.c = w, c

    def forward(self, x):
        return ((x * self.w).sum(dim=(1, 2, 3)) + self.c * x.pow(2).sum(dim=(1, 2, 3))).unsqueeze(1)


def test_symmetric_infidelity_is_zero_for_the_exact_gradient_of_a_quadratic():
    from depthscope.assess import infidelity

    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(1, 3, 32, 24, generator=g, dtype=torch.float64), torch.randn(1, 3, 32, 24, generator=g)
    f = _Quadratic(w.double(), 0.5)
    grad = w.double() + 2 * 0.5 * x  # the exact gradient at x
    for cv in (False, True):  # zero up to float64 rounding of drops whose energy is ~31
        sym = infidelity(f, x, grad, 16, sigma=0.1, symmetric=True, chunk_size=4, control_variate=cv)
        assert sym.value == pytest.approx(0, abs=1e-12)
    plain = infidelity(f, x, grad, 16, sigma=0.1, symmetric=False, chunk_size=4)
    # plain drops carry the even term c |I|^2 (sigma 0.1, 2304 values: about 11.5) that no map explains
    assert plain.value > 1.0


def _exact_infidelity(grad, attr, sigma, c, dims):
    """Normalised infidelity of ``attr`` for ``_Quadratic`` with plain drops ``<g, I> - c |I|^2``, by hand:
    ``sigma^2 (|g|^2 - <a, g>^2 / |a|^2)`` (the part of g that a misses) ``+ c^2 sigma^4 D (D + 2)`` (E|I|^4; the
    cross term has odd moments of I only, so it vanishes)."""
    g, a = grad.flatten(), attr.flatten()
    return sigma**2 * (g @ g - (a @ g) ** 2 / (a @ a)).item() + c**2 * sigma**4 * dims * (dims + 2)


@pytest.mark.parametrize("c", [0.0, 0.05])
def test_control_variate_infidelity_matches_the_exact_value_with_a_narrower_ci(c):
    from depthscope.assess import infidelity

    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(1, 3, 32, 24, generator=g, dtype=torch.float64), torch.randn(1, 3, 32, 24, generator=g)
    f, grad = _Quadratic(w.double(), c), w.double() + 2 * c * x
    attr = grad + 3 * torch.randn(grad.shape, generator=g, dtype=torch.float64)  # explains part of the drop
    exact = _exact_infidelity(grad, attr, 0.1, c, x.numel())
    cv = infidelity(f, x, attr, 64, sigma=0.1, seed=1, chunk_size=16, symmetric=False)
    mc = infidelity(f, x, attr, 64, sigma=0.1, seed=1, chunk_size=16, symmetric=False, control_variate=False)
    assert cv.ci_low <= exact <= cv.ci_high and mc.ci_low <= exact <= mc.ci_high
    if c == 0:  # a linear model: the gradient predicts every drop, so the estimate is exact at any count
        assert cv.value == pytest.approx(exact, rel=1e-9) and cv.ci_high - cv.ci_low < 1e-9 * exact
    else:
        assert cv.ci_high - cv.ci_low < (mc.ci_high - mc.ci_low) / 3


def test_af_acceptance_holds_under_the_recommended_default(meter_nyu, nyu):
    """The default protocol of assess (``recommended``: 8-px patches replaced by a blur, 0-50 %), mean over the 10
    NYU images at full resolution: random ~0, inverted IG negative, IG above random."""
    from depthscope.assess import AssessConfig

    c = AssessConfig().metric_config("curves")
    assert (AssessConfig().protocol, c.replacement, c.patch) == ("recommended", "blur", 8)
    mean = _af_means(
        meter_nyu, nyu, ["random", "integrated_gradients"], fractions=c.fractions, invert="integrated_gradients",
        replacement=c.replacement, patch=c.patch,
    )  # fmt: skip
    print("af_perturbation means (recommended protocol, 480x640):", mean)
    assert abs(mean["random"]) < 0.1
    assert mean["inverted_integrated_gradients"] < 0
    assert mean["integrated_gradients"] > mean["random"] + 0.1
