import csv
import json

import pytest

from depthscope.metrics.evaluate import evaluate


def test_meter_xxs_nyu_reaches_verified_numbers(meter_nyu, nyu_dir, tmp_path):
    """Weights README: Eigen crop, 1e-3..10 m, mean over the 10 sample images: RMSE ~0.56, AbsRel ~0.176, d1 ~0.73."""
    r = evaluate(meter_nyu, nyu_dir, crop="eigen", out=tmp_path)
    assert r.metrics["rmse"] == pytest.approx(0.56, abs=0.01)
    assert r.metrics["abs_rel"] == pytest.approx(0.176, abs=0.006)
    assert r.metrics["delta1"] == pytest.approx(0.73, abs=0.01)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["n_images"] == 10 and saved["model"] == "meter-xxs-nyu" and saved["dataset"] == "nyu"
    for key in ("mae", "rmse", "rmse_log", "abs_rel", "sq_rel", "log10", "silog", "delta1", "delta2", "delta3"):
        assert key in saved
    rows = list(csv.DictReader(open(tmp_path / "per_image.csv")))
    assert len(rows) == 10
    assert sum(float(r["rmse"]) for r in rows) / 10 == pytest.approx(saved["rmse"], rel=1e-6)


def test_images_without_ground_truth_are_predicted_counted_and_kept(meter_nyu, nyu_dir, tmp_path, capsys):
    import shutil

    import numpy as np
    import torch

    from depthscope.cli import main
    from depthscope.data import read_image

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        shutil.copy(nyu_dir / f"image_{i}.png", data)
        if i < 2:
            shutil.copy(nyu_dir / f"depth_{i}.png", data)
    r = evaluate(meter_nyu, data, out=tmp_path / "e")
    assert [row["image"] for row in r.per_image] == ["image_0", "image_1"] and r.settings["n_without_gt"] == 2
    assert r.metrics["rmse"] == pytest.approx(evaluate(meter_nyu, nyu_dir, limit=2).metrics["rmse"], rel=1e-6)
    assert "2 of 4 images had no ground-truth depth" in capsys.readouterr().err
    with torch.no_grad():
        ref = meter_nyu(read_image(data / "image_3.png")[None])[0, 0].numpy()
    assert np.allclose(np.load(tmp_path / "e" / "predictions" / "image_3.npy"), ref, rtol=1e-5, atol=1e-6)
    for i in range(2):
        (data / f"depth_{i}.png").unlink()
    assert main(["evaluate", "--data", str(data), "--out", str(tmp_path / "none")]) == 0
    assert "no image had ground-truth depth" in capsys.readouterr().out
    saved = json.loads((tmp_path / "none" / "metrics.json").read_text())
    assert saved["n_images"] == 0 and saved["n_without_gt"] == 4 and "rmse" not in saved


def test_metrics_json_states_units_and_directions(tmp_path, nyu_dir, meter_nyu):
    import json

    from depthscope.metrics.evaluate import evaluate

    evaluate(meter_nyu, nyu_dir, limit=1, metrics="standard,boundary", out=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["units"]["rmse"] == "m" and saved["units"]["abs_rel"] == "" and saved["units"]["boundary_f1"] == ""
    assert saved["better"]["rmse"] == "lower" and saved["better"]["delta1"] == "higher"
    assert saved["better"]["boundary_f1"] == "higher"
