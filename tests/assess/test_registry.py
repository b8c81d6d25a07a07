"""A new assessment metric is one class: registered here, in the test file, it reaches results.csv, summary.csv
(with its direction), settings.json and the CLI with no other file touched."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field

import pytest

from depthscope.assess import METRICS, AssessConfig, AssessmentMetric, Column, register_metric
from depthscope.cli import main
from depthscope.errors import InputError, UnknownNameError


@dataclass(frozen=True)
class TopShareConfig:
    fraction: float = field(default=0.1, metadata={"help": "share of the pixels called most relevant"})


class TopShare(AssessmentMetric):
    """Share of the map's magnitude held by its top ``fraction`` of pixels (a concentration score, computed by
    hand below from the saved map)."""

    name = "top_share"
    category = "complexity"
    higher_is_better = True
    Config = TopShareConfig
    columns = (Column("top_share", higher_is_better=True), Column("top_share_pixels", summarised=False))

    def score(self, ctx, attribution):
        m = attribution.magnitude[0].flatten()
        k = max(1, int(self.config.fraction * m.numel()))
        return {"top_share": (m.topk(k).values.sum() / m.sum()).item(), "top_share_pixels": k}


@pytest.fixture
def toy_metric():
    register_metric(TopShare)
    yield TopShare
    METRICS.unregister("top_share")


def read(path):
    return list(csv.DictReader(open(path)))


def test_toy_metric_runs_from_the_cli_into_results_and_summary(toy_metric, tmp_path, nyu_dir):
    out = tmp_path / "run"
    argv = ["assess", "--data", str(nyu_dir), "--limit", "2", "--methods", "random", "--metrics", "top_share"]
    assert main([*argv, "--top-share-fraction", "0.25", "--out", str(out)]) == 0
    rows = read(out / "results.csv")
    assert list(rows[0]) == ["model", "method", "image", "top_share", "top_share_pixels", "seconds_per_map",
                            "completeness_error", "device"]  # fmt: skip
    assert [r["image"] for r in rows] == ["image_0", "image_1"]
    # The random map is U(0, 1): its top 25 % (values in [0.75, 1]) hold (1 - 0.75^2) / 1 = 0.4375 of its sum, by
    # hand; with 307,200 pixels the sample is that to ~1e-3.
    assert [float(r["top_share"]) for r in rows] == pytest.approx([0.4375, 0.4375], abs=3e-3)
    assert {r["top_share_pixels"] for r in rows} == {str(480 * 640 // 4)}
    (summary,) = read(out / "summary.csv")
    assert summary["top_share_better"] == "higher" and summary["n_images"] == "2"
    assert float(summary["top_share_mean"]) == pytest.approx(0.4375, abs=3e-3)
    assert "top_share_pixels_mean" not in summary  # not a score: not summarised
    settings = json.loads((out / "settings.json").read_text())
    assert settings["metrics"] == ["top_share"] and settings["metric_configs"] == {"top_share": {"fraction": 0.25}}


def test_toy_metric_options_through_the_python_api_and_option_strings(toy_metric):
    cfg = AssessConfig(methods=("random",), metrics=("top_share",)).with_options(["top_share.fraction=0.5"])
    assert cfg.build_metrics()["top_share"].config == TopShareConfig(0.5)
    with pytest.raises(InputError, match="top_share has no option 'fractoin'; its options: fraction"):
        cfg.with_options(["top_share.fractoin=0.5"])
    with pytest.raises(InputError, match="must be a number"):
        cfg.with_options(["top_share.fraction=lots"])


def test_unknown_metric_lists_the_registered_ones(tmp_path):
    with pytest.raises(
        UnknownNameError, match="unknown assessment metric 'fidelity'; valid assessment metrics: af_depth"
    ):
        AssessConfig(metrics=("fidelity",))


def test_builtin_metrics_declare_direction_and_category():
    declared = {n: (METRICS.get(n).category, METRICS.get(n).higher_is_better) for n in METRICS.names()}
    assert declared == {
        "af_depth_correlation": ("fidelity", True),
        "complexity": ("complexity", False),
        "curves": ("fidelity", True),
        "faithfulness_correlation": ("faithfulness", True),
        "infidelity": ("faithfulness", False),
        "matched_control": ("fidelity", None),  # a reference for af_perturbation, no direction of its own
        "sparseness": ("complexity", True),
        "road": ("faithfulness", True),
        "insertion_deletion": ("faithfulness", True),
        "monotonicity_correlation": ("faithfulness", True),
        "irof": ("faithfulness", True),
        "sensitivity": ("robustness", False),
        "local_lipschitz": ("robustness", False),
        "relative_stability": ("robustness", False),
        "mprt": ("randomisation", False),
        "smooth_mprt": ("randomisation", False),
        "efficient_mprt": ("randomisation", True),
        "random_target": ("randomisation", False),
        "target_share": ("localisation", None),  # a description: depth may be read from context
    }


def test_a_metric_whose_headline_column_disagrees_is_refused():
    class Bad(TopShare):
        name = "bad_metric"  # no column of that name

    with pytest.raises(TypeError, match="needs one column named 'bad_metric'"):
        register_metric(Bad)
    assert "bad_metric" not in METRICS


def test_settings_name_the_changed_metric_option(tmp_path, nyu_dir):
    from depthscope.assess import assess

    cfg = AssessConfig(methods=("random",), metrics=("curves",), metric_options={"curves": {"fractions": [0, 0.5]}})
    assess(["meter-xxs-nyu"], nyu_dir, cfg, tmp_path, limit=1)
    other = AssessConfig(methods=("random",), metrics=("curves",), metric_options={"curves": {"fractions": [0, 0.4]}})
    with pytest.raises(InputError, match=r"other settings \(metric_configs.curves.fractions\)"):
        assess(["meter-xxs-nyu"], nyu_dir, other, tmp_path, limit=1)


def test_config_round_trips_through_json_and_pickle():
    import pickle

    cfg = AssessConfig(methods=("saliency",), metric_options={"infidelity": {"sigma": 0.02}}, seed=7)
    assert AssessConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
