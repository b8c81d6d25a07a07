"""The cost plan: passes per phase counted by hand from each method's and metric's definition, the same phases
a run measures (plan.json), and `assess --dry-run` writing nothing."""

import json

import pytest

from depthscope.assess import AssessConfig
from depthscope.assess.plan import phase_passes
from depthscope.cli import main


def test_passes_per_phase_by_hand():
    cfg = AssessConfig(
        methods=("saliency", "integrated_gradients", "occlusion", "random"),
        metrics=("curves", "infidelity", "faithfulness_correlation", "af_depth_correlation"),
        n_perturbations=8,
        method_options={"integrated_gradients": {"n_steps": 16, "tolerance": None}},
    )
    got = phase_passes(cfg, 480, 640)
    curves = 1 + 3 * 10  # the unperturbed image, then MoRF/LeRF/random at the 10 fractions 5 %..50 %
    occlusion = 1 + len(range(0, 480 - 60 + 1, 30)) * len(range(0, 640 - 60 + 1, 30))  # window 480/8, stride 30
    assert got == {
        "draws: infidelity": (2 * 8 + 1, 1),  # x + noise and x - noise per draw; the control variate's gradient
        "draws: faithfulness_correlation": (1 + 8, 0),  # f(x), then each patch set replaced
        "map: saliency": (1, 1),
        "scores: saliency": (curves, 0),
        "map: integrated_gradients": (16 + 2, 16),  # F(x), F(baseline), then one forward+backward per node
        "scores: integrated_gradients": (curves, 0),
        "map: occlusion": (occlusion, 0),
        "scores: occlusion": (curves, 0),
        "map: random": (0, 0),
        "scores: random": (curves, 0),
    }
    adaptive = cfg.with_options(["integrated_gradients.tolerance=0.02"])
    assert phase_passes(adaptive, 480, 640)["map: integrated_gradients"] == (152, 150)  # the max_steps bound


def test_metrics_that_make_maps_are_planned_at_the_scored_method_s_cost():
    cfg = AssessConfig(
        methods=("saliency", "integrated_gradients", "random"),
        metrics=("sensitivity", "mprt", "road", "monotonicity_correlation"),
        method_options={"integrated_gradients": {"n_steps": 16, "tolerance": None}},
    )
    got = phase_passes(cfg, 480, 640)
    maps = 8 + 3  # sensitivity: one map per perturbed input (8); mprt: one per cascade step (3)
    fixed = 1 + 2 * 10 + 1 + 20 * 4  # road: MoRF and LeRF at 10 fractions; monotonicity: 20 groups x 4 draws
    assert got["draws: sensitivity"] == (8 + 1, 0) and got["draws: mprt"] == (1, 0)
    assert got["scores: saliency"] == (fixed + maps * 1, maps * 1)
    assert got["scores: integrated_gradients"] == (fixed + maps * 18, maps * 16)
    assert got["scores: random"] == (fixed, 0)


def test_a_run_measures_the_planned_phases(tmp_path, nyu_dir):
    from depthscope.assess import assess

    cfg = AssessConfig(methods=("saliency", "random"), metrics=("curves", "infidelity"), n_perturbations=8)
    assess(["meter-xxs-nyu"], nyu_dir, cfg, tmp_path, limit=1)
    saved = json.loads((tmp_path / "plan.json").read_text())["meter-xxs-nyu"]
    planned = [r["phase"] for r in saved["phases"]][:-1]  # the last row is the total
    assert planned == ["draws: infidelity", "map: saliency", "scores: saliency", "map: random", "scores: random"]
    assert set(planned) <= set(saved["measured_per_image_s"]) and saved["images_measured"] == 1
    assert saved["phases"][-1]["forwards"] == 17 + 1 + 31 + 0 + 31


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, nyu_dir, capsys):
    out = tmp_path / "never"
    rc = main(["assess", "--dry-run", "--data", str(nyu_dir), "--methods", "saliency", "--metrics", "curves",
               "--limit", "4", "--out", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and not out.exists()
    assert "4 image(s) of 480x640" in text and "scores: saliency" in text and "nothing was written" in text


def test_adaptive_metrics_are_planned_at_the_first_images_draws_with_the_budget_as_bound(meter_nyu, nyu):
    from depthscope.assess import AssessConfig, plan

    cfg = AssessConfig(methods=("saliency", "random"), metrics=("infidelity",))
    cost = plan(cfg, meter_nyu, nyu, limit=2, chunk_size=8)
    draws = next(p for p in cost.phases if p.phase == "draws: infidelity")
    n = (draws.forwards - 1) // 2  # symmetric: 2 forwards a draw, + the control variate's forward
    assert 32 <= n < 256 and n % 8 == 0  # the first look at 32 draws, then rounds of 8, below the budget
    assert f"planned at the {n} draws it used on the first image" in cost.summary()
    # the bound: the same phases with 256 draws, the draws' seconds scaled by their passes
    assert cost.most_seconds_per_image > cost.seconds_per_image
    assert cost.most_seconds_per_image - cost.seconds_per_image == pytest.approx(
        draws.seconds / (draws.forwards + draws.backwards) * (513 - draws.forwards), rel=1e-6
    )
