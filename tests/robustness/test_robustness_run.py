"""depthscope robustness on the real model and the NYU sample: the table, mCE/mRR by hand, the map drift, the
figure, resume and bad input."""

import csv
import json

import pytest

from depthscope.errors import InputError
from depthscope.robustness import dee, robustness, summarise_robustness


def test_summary_by_hand():
    rows = [
        {"image": "a", "corruption": "clean", "severity": 0, "rmse": 1, "abs_rel": 0.1, "delta1": 0.9, "dee": 0.1, "ref_dee": 0.2},
        {"image": "a", "corruption": "fog", "severity": 1, "rmse": 1, "abs_rel": 0.2, "delta1": 0.8, "dee": 0.2, "ref_dee": 0.4},
        {"image": "a", "corruption": "fog", "severity": 2, "rmse": 1, "abs_rel": 0.4, "delta1": 0.6, "dee": 0.4, "ref_dee": 0.4},
    ]  # fmt: skip
    res = summarise_robustness(rows)
    # CE = (0.2 + 0.4) / (0.4 + 0.4) = 0.75; RR = ((1 - 0.2) + (1 - 0.4)) / (2 * (1 - 0.1)) = 1.4 / 1.8
    assert res.per_corruption == [{"corruption": "fog", "ce": pytest.approx(0.75), "rr": pytest.approx(1.4 / 1.8),
                                   "severities": 2}]  # fmt: skip
    assert res.mce == pytest.approx(0.75) and dee(0.2, 0.8) == pytest.approx(0.2)


def test_cli_table_figure_and_resume(tmp_path, nyu_dir, capsys):
    from depthscope.cli import main

    out = tmp_path / "rob"
    argv = ["robustness", "--data", str(nyu_dir), "--limit", "2", "--corruptions", "gaussian_noise,defocus_blur",
            "--severities", "1,5", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mCE 100.0%" in printed and "saliency_spearman" in printed
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 * (1 + 2 * 2)  # images x (clean + corruptions x severities)
    clean = [r for r in rows if r["corruption"] == "clean"]
    assert all(float(r["saliency_spearman"]) == pytest.approx(1.0) for r in clean)
    blurred = [r for r in rows if r["corruption"] == "defocus_blur" and r["severity"] == "5"]
    assert all(float(r["rmse"]) > 2 * float(c["rmse"]) for r, c in zip(blurred, clean, strict=True))  # the frame
    assert (out / "corruptions.png").stat().st_size > 10_000
    summary = json.loads((out / "robustness.json").read_text())
    assert summary["mce"] == pytest.approx(1.0) and 0 < summary["mrr"] < 1
    before = (out / "results.csv").read_text()
    assert main(argv) == 0  # a rerun resumes: nothing recomputed, nothing duplicated
    assert (out / "results.csv").read_text() == before
    assert main([*argv[:-2], "--severities", "1", "--out", str(out)]) == 2
    assert "other settings (severities)" in capsys.readouterr().err


def test_a_reference_gives_a_real_mce(tmp_path, nyu_dir, meter_nyu):
    import copy

    import torch

    other = copy.deepcopy(meter_nyu)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.05)  # a different model to be relative to
    res = robustness(meter_nyu, nyu_dir, ["jpeg_compression"], [5], [], reference=other, out=tmp_path / "r", limit=1)
    ce = res.per_corruption[0]["ce"]
    assert res.mce == pytest.approx(ce) and ce != pytest.approx(1.0)


def test_bad_input_is_one_line(tmp_path, nyu_dir):
    with pytest.raises(InputError, match="--severities take 1-5"):
        robustness("meter-xxs-nyu", nyu_dir, ["fog"], [0], out=tmp_path / "x")
    with pytest.raises(Exception, match="unknown corruption 'snow'"):
        robustness("meter-xxs-nyu", nyu_dir, ["snow"], [1], out=tmp_path / "x")
