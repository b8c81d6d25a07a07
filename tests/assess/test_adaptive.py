"""Adaptive Monte Carlo: the stopping rule on hand-made numbers, the Pearson influence against the textbook
standard error, and the adaptive metrics on a linear model and on METER."""

import math
from types import SimpleNamespace

import pytest
import torch
from test_fidelity import _Linear  # f(x) = <w, x>

from depthscope.assess.fidelity import (
    Draws,
    NoiseStream,
    faithfulness_influence,
    faithfulness_score,
    infidelity_score,
    noise_draws,
    pearson_influence,
    resolved,
    sequential_draws,
)


def test_resolved_pairs_by_hand():
    n = 100
    # influence rows of std 1 -> a pair's paired difference has std 0 (same rows) or sqrt(2) (independent rows)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)
    a, b = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    half = 1.96 * (a - b).std().item() / math.sqrt(n)  # ~0.28
    infl = torch.stack([a, b])
    assert resolved(torch.tensor([0.0, 1.0]), infl, 1.0, 0.02)  # gap 1 > half: ordered
    assert not resolved(torch.tensor([0.0, 0.1]), infl, 1.0, 0.02)  # gap 0.1 < half, half > tolerance
    assert resolved(torch.tensor([0.0, 0.1]), infl, 1.0, half / 0.9)  # ... but within a tolerance above half
    assert resolved(torch.tensor([0.0, 0.1]), infl, 10.0 * half / 0.9, 0.1)  # the tolerance scales with scale
    same = torch.stack([a, a])  # identical influence: the difference is known exactly
    assert resolved(torch.tensor([0.5, 0.5]), same, 1.0, 0.02)
    # futile: at a budget of 200 the half-width would still be 0.28 / sqrt(2) = 0.2 > 0.02 with the gap 0.1 inside
    # it, so more draws cannot resolve the pair; with a budget of 10,000 they could (0.028 < 0.1)
    assert resolved(torch.tensor([0.0, 0.1]), infl, 1.0, 0.02, budget=200)
    assert not resolved(torch.tensor([0.0, 0.1]), infl, 1.0, 0.02, budget=10_000)
    one = a[None]  # a lone map: its own half-width 1.96 / 10 against the tolerance
    assert resolved(torch.tensor([0.5]), one, 1.0, 0.2) and not resolved(torch.tensor([0.5]), one, 1.0, 0.19)


def _fake_draws(k: int) -> Draws:
    return Draws(torch.zeros(k, 1, 2, 2), torch.zeros(k, dtype=torch.float64))


def test_sequential_draws_stops_at_the_first_look_or_the_budget():
    looks = []

    def never(d):
        # influence rows +-e, e alternating +-1: the paired difference has half-width 3.92 / sqrt(n - 1), 0.704 at
        # n = 32 (0.630 projected to the budget of 40); a gap of 0.68 is not ordered, not known to 0.02 and not
        # futile (more draws could order it), so the loop draws to the budget
        looks.append(len(d))
        e = torch.tensor([1.0, -1.0]).repeat(len(d) // 2 + 1)[: len(d)].double()
        return torch.tensor([0.0, 0.68]), torch.stack([e, -e]), 1.0

    assert len(sequential_draws(_fake_draws, never, budget=40, round_size=16, tolerance=0.02)) == 40
    assert looks == [32]  # looked once enough draws were made (32), then drew the rest of the budget (8)
    always = lambda d: (torch.tensor([0.0, 1.0]), torch.zeros(2, len(d)), 1.0)  # noqa: E731
    assert len(sequential_draws(_fake_draws, always, budget=256, round_size=16, tolerance=0.02)) == 32
    assert len(sequential_draws(_fake_draws, always, budget=10, round_size=16, tolerance=0.02)) == 10


def test_pearson_influence_gives_the_textbook_standard_error():
    """For bivariate normal data the standard error of Pearson's r is (1 - rho^2) / sqrt(n) (Fisher 1915)."""
    g = torch.Generator().manual_seed(0)
    n, rho = 20000, 0.5
    u = torch.randn(n, generator=g, dtype=torch.float64)
    v = rho * u + math.sqrt(1 - rho**2) * torch.randn(n, generator=g, dtype=torch.float64)
    r, influence = pearson_influence(u[None], v)
    assert r.item() == pytest.approx(torch.corrcoef(torch.stack([u, v]))[0, 1].item(), abs=1e-12)
    assert influence.std().item() / math.sqrt(n) == pytest.approx((1 - rho**2) / math.sqrt(n), rel=0.05)


def test_faithfulness_influence_is_the_estimate_of_each_map():
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(50, 1, 8, 6, generator=g) < 0.3
    drops = torch.randn(50, generator=g, dtype=torch.float64)
    maps = torch.randn(3, 8, 6, generator=g)
    r, influence, scale = faithfulness_influence(Draws(masks, drops), maps)
    assert scale == 1.0 and influence.shape == (3, 50)
    for m in range(3):
        # the sums in float32 either way, summed in another order: rounding of ~1e-7 relative
        assert r[m].item() == pytest.approx(faithfulness_score(Draws(masks, drops), maps[m][None]).value, abs=1e-6)


def test_adaptive_infidelity_stops_early_and_equals_the_fixed_count_on_its_draws():
    """f(x) = <w, x>: the exact map w leaves nothing unexplained, an unrelated map all of it: resolved at the first
    look (32 draws), and the scores equal the fixed-count estimator's on the same 32 draws."""
    from depthscope.assess.metrics import Infidelity, InfidelityConfig
    from depthscope.assess.registry import ImageContext
    from depthscope.explain.attribution import Attribution

    g = torch.Generator().manual_seed(0)
    x, w = torch.rand(1, 3, 32, 24, generator=g), torch.randn(1, 3, 32, 24, generator=g)
    f = _Linear(w)
    maps = {"exact": w, "unrelated": torch.randn(1, 3, 32, 24, generator=g)}
    attrs = {k: Attribution(k, v) for k, v in maps.items()}
    metric = Infidelity(InfidelityConfig(n_perturbations=256, control_variate=False))
    ctx = ImageContext(SimpleNamespace(differentiable=True), f, x, f(x)[0], None, seed=5, chunk_size=8)
    rows = metric.score_maps(ctx, attrs)
    assert {r["infidelity_n"] for r in rows.values()} == {32}
    fixed = noise_draws(f, x, 32, seed=5, chunk_size=8, control_variate=False)
    for k, v in maps.items():
        assert rows[k]["infidelity"] == pytest.approx(infidelity_score(fixed, v).value, rel=1e-6, abs=1e-12)
    assert rows["exact"]["infidelity"] < 1e-6 * rows["unrelated"]["infidelity"]
    # a stream continued round by round is the one stream: the first 32 of 48 equal 32 drawn at once
    s = NoiseStream(f, x, seed=5, chunk_size=8, control_variate=False)
    two_rounds = s.draw(16).cat(s.draw(32))
    assert torch.equal(two_rounds.perturbation[:32], fixed.perturbation)


def test_meter_adaptive_infidelity_uses_fewer_draws_and_one_count_per_image(meter_nyu, small_image):
    from depthscope.assess import AssessConfig, assess_image

    cfg = AssessConfig(methods=("saliency", "random"), metrics=("infidelity",))
    rows = dict(assess_image(meter_nyu, small_image, cfg, chunk_size=8))
    n = {r["infidelity_n"] for r in rows.values()}
    assert len(n) == 1 and 32 <= n.pop() < 256  # all maps of the image scored on the same, stopped draws
    assert rows["saliency"]["infidelity"] < rows["random"]["infidelity"]
    fixed = AssessConfig(methods=("saliency", "random"), metrics=("infidelity",), n_perturbations=64,
                         metric_options={"infidelity": {"adaptive": False}})  # fmt: skip
    assert {r["infidelity_n"] for _, r in assess_image(meter_nyu, small_image, fixed, chunk_size=8)} == {64}


def test_growing_products_equal_the_products_of_all_draws_at_every_look():
    from depthscope.assess.fidelity import GrowingProducts, noise_dots, subset_sums

    g = torch.Generator().manual_seed(2)
    noise = Draws(torch.randn(40, 3, 8, 6, generator=g), torch.zeros(40))
    masks = Draws(torch.rand(40, 1, 8, 6, generator=g) < 0.3, torch.zeros(40))
    maps, signed = torch.randn(3, 3, 8, 6, generator=g), torch.randn(3, 8, 6, generator=g)
    for draws, m, product in ((noise, maps, noise_dots), (masks, signed, subset_sums)):
        grow = GrowingProducts(m, product)
        for n in (16, 24, 24, 40):  # rounds of 8 after a first look at 16; a repeated look adds nothing
            assert torch.allclose(grow(draws[:n]), product(draws[:n], m), rtol=1e-6, atol=1e-9)
        assert grow.known.shape == (3, 40)
