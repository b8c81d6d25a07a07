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
