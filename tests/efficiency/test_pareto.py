import json

import pytest

from depthscope.cli import main
from depthscope.efficiency import eer, pareto_front
from depthscope.errors import InputError

POINTS = [
    {"model": "a", "lat": 1.0, "rmse": 0.9},
    {"model": "b", "lat": 2.0, "rmse": 0.5},
    {"model": "c", "lat": 3.0, "rmse": 0.6},  # dominated by b
    {"model": "d", "lat": 4.0, "rmse": 0.2},
    {"model": "e", "lat": 4.0, "rmse": 0.3},  # dominated by d (same x, worse y)
    {"model": "f", "lat": 1.0, "rmse": 0.9},  # ties a: neither dominates
]


def test_pareto_front_hand_made_points():
    assert [r["model"] for r in pareto_front(POINTS, "lat", "rmse")] == ["a", "f", "b", "d"]


def test_eer_self_is_one_and_hand_computed():
    ref = {"model": "r", "params": 100, "flops": 10.0, "lat": 4.0}
    assert eer(ref, ref, ["params", "flops", "lat"]) == 1.0
    m = {"model": "m", "params": 50, "flops": 20.0, "lat": 1.0}
    assert eer(m, ref, ["params", "flops", "lat"]) == pytest.approx((0.5 + 2.0 + 0.25) / 3)
    with pytest.raises(InputError, match="no value for 'memory'"):
        eer(m, ref, ["memory"])


def test_profile_and_pareto_cli(tmp_path, capsys):
    prof = tmp_path / "prof"
    assert (
        main(
            [
                "profile",
                "--model",
                "meter-xxs-nyu,meter-xs",
                "--input-size",
                "96",
                "128",
                "--repeats",
                "2",
                "--warmup",
                "1",
                "--batches",
                "1,2",
                "--out",
                str(prof),
            ]
        )
        == 0
    )
    rows = json.loads((prof / "profile.json").read_text())
    xxs = rows["meter-xxs-nyu"]
    for key in (
        "params",
        "macs",
        "flops",
        "param_bytes",
        "peak_memory_bytes",
        "latency_ms_median",
        "latency_ms_p90",
        "device",
        "threads",
        "input_size",
    ):
        assert key in xxs
    assert xxs["params"] == 713_464 and xxs["flops"] == 2 * xxs["macs"] and xxs["input_size"] == [96, 128]
    assert rows["meter-xs"]["macs"] > xxs["macs"]
    metrics = []
    for name, rmse in (("meter-xxs-nyu", 0.56), ("meter-xs", 0.50)):
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps({"model": name, "rmse": rmse}))
        metrics.append(str(p))
    out = tmp_path / "pareto"
    assert (
        main(
            [
                "pareto",
                "--profile",
                str(prof / "profile.json"),
                "--metrics",
                *metrics,
                "--x",
                "flops",
                "--y",
                "rmse",
                "--reference",
                "meter-xxs-nyu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lines = (out / "pareto.csv").read_text().splitlines()
    assert lines[0] == "model,flops,rmse,on_frontier,weights,eer"
    assert lines[1].startswith("meter-xxs-nyu,") and lines[1].endswith(",True,trained,1.0")
    assert (out / "pareto.png").stat().st_size > 0
    assert (
        main(
            [
                "pareto",
                "--profile",
                str(prof / "profile.json"),
                "--x",
                "flops",
                "--y",
                "rmse",
                "--reference",
                "nope",
                "--metrics",
                *metrics,
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "reference 'nope'" in capsys.readouterr().err


def test_pareto_names_each_model_it_leaves_out_and_flags_random_weights(capsys):
    from depthscope.efficiency.pareto import pareto_table

    rows = [
        {"model": "trained", "macs": 1.0, "rmse": 0.5, "weights": "a.pth"},
        {"model": "untrained", "macs": 2.0, "rmse": 3.2, "weights": "random"},
        {"model": "costs-only", "macs": 0.5},
    ]
    table = pareto_table(rows, "macs", "rmse")
    err = capsys.readouterr().err
    assert [r["model"] for r in table] == ["trained", "untrained"]
    assert "costs-only is left out: it has no rmse (no metrics.json" in err
    assert "untrained was evaluated with random weights" in err
    assert [r["weights"] for r in table] == ["trained", "random"]


def test_pareto_front_knows_higher_is_better_columns():
    from depthscope.efficiency.pareto import pareto_front

    rows = [
        {"model": "fast", "ms": 1.0, "spearman": 0.50, "delta1": 0.80},
        {"model": "best", "ms": 3.0, "spearman": 0.95, "delta1": 0.85},
        {"model": "worse", "ms": 4.0, "spearman": 0.90, "delta1": 0.90},  # slower and less agreeing than best
        {"model": "mid", "ms": 2.0, "spearman": 0.70, "delta1": 0.70},
    ]
    assert [r["model"] for r in pareto_front(rows, "ms", "spearman", frozenset({"spearman"}))] == [
        "fast",
        "mid",
        "best",
    ]
    # spearman read as lower-is-better, the frontier would be just the fastest, least agreeing one
    assert [r["model"] for r in pareto_front(rows, "ms", "spearman", frozenset())] == ["fast"]
    # delta1 is higher-is-better by default
    assert [r["model"] for r in pareto_front(rows, "ms", "delta1")] == ["fast", "best", "worse"]
