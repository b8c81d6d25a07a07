import math

import numpy as np
import pytest
import torch

from depthscope.errors import InputError
from depthscope.metrics import crop_mask, depth_metrics, evaluate_depth


def bts_compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The BTS/AdaBins evaluation formulas (eval_with_pngs.py compute_errors), written out as the reference."""
    thresh = np.maximum(gt / pred, pred / gt)
    d1, d2, d3 = (thresh < 1.25).mean(), (thresh < 1.25**2).mean(), (thresh < 1.25**3).mean()
    rms = np.sqrt(((gt - pred) ** 2).mean())
    log_rms = np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean())
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    sq_rel = np.mean(((gt - pred) ** 2) / gt)
    err = np.log(pred) - np.log(gt)
    silog = np.sqrt(np.mean(err**2) - np.mean(err) ** 2) * 100
    log10 = np.mean(np.abs(np.log10(gt) - np.log10(pred)))
    return dict(
        silog=silog,
        log10=log10,
        abs_rel=abs_rel,
        sq_rel=sq_rel,
        rmse=rms,
        rmse_log=log_rms,
        delta1=d1,
        delta2=d2,
        delta3=d3,
        mae=np.mean(np.abs(gt - pred)),
    )


def test_hand_computed_example():
    gt, pred = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 1.0, 8.0])
    m = depth_metrics(pred, gt)
    ln2 = math.log(2)
    expected = {
        "mae": 5 / 3,
        "rmse": math.sqrt(17 / 3),
        "abs_rel": 0.5,
        "sq_rel": 1.5,
        "rmse_log": ln2 * math.sqrt(2 / 3),
        "silog": 100 * ln2 * math.sqrt(2 / 3),
        "log10": 2 * math.log10(2) / 3,
        "delta1": 1 / 3,
        "delta2": 1 / 3,
        "delta3": 1 / 3,
    }
    for k, v in expected.items():
        assert m[k] == pytest.approx(v, abs=1e-12), k


def test_matches_bts_formulas_with_caps_and_crop():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.0, 12.0, (480, 640)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.2] = 0  # holes
    pred = (gt + rng.normal(0, 0.5, gt.shape)).astype(np.float32)
    pred[0, 0] = np.nan
    # BTS eval: clip the prediction, valid = min < gt < max inside the Eigen crop
    p = np.nan_to_num(pred.copy(), nan=1e-3).clip(1e-3, 10)
    valid = (gt > 1e-3) & (gt < 10)
    crop = np.zeros_like(valid)
    crop[45:471, 41:601] = True
    ref = bts_compute_errors(gt[valid & crop].astype(np.float64), p[valid & crop].astype(np.float64))
    ours = evaluate_depth(torch.from_numpy(pred), torch.from_numpy(gt), 1e-3, 10.0, "eigen")
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_crop_bounds():
    m = crop_mask(480, 640, "eigen")
    rows, cols = m.any(1).nonzero(), m.any(0).nonzero()
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (45, 470, 41, 600)
    g = crop_mask(375, 1242, "garg")
    rows, cols = g.any(1).nonzero(), g.any(0).nonzero()
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    with pytest.raises(InputError, match="valid crops"):
        crop_mask(10, 10, "weird")


def test_median_scaling_recovers_scale():
    gt = torch.rand(20, 30) * 5 + 0.5
    out = evaluate_depth(gt * 2, gt, median_scaling=True)
    assert out["scale"] == pytest.approx(0.5)
    assert out["abs_rel"] == pytest.approx(0.0, abs=1e-7) and out["delta1"] == 1.0


def test_bad_inputs():
    with pytest.raises(InputError, match="differ in size"):
        evaluate_depth(torch.ones(4, 4), torch.ones(4, 5))
    with pytest.raises(InputError, match="no valid ground-truth"):
        evaluate_depth(torch.ones(4, 4), torch.zeros(4, 4))
    with pytest.raises(InputError, match="NaN"):
        evaluate_depth(torch.ones(2, 2), torch.tensor([[1.0, float("nan")], [1.0, 1.0]]))
