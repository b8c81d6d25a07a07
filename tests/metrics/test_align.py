"""Alignment of scale-ambiguous predictions: exact recovery of known scale/shift, against numpy's polyfit."""

import numpy as np
import pytest
import torch

from depthscope.errors import InputError
from depthscope.metrics.align import align_prediction
from depthscope.metrics.depth import evaluate_depth

GT = torch.linspace(0.5, 9.0, 200, dtype=torch.float64)


def test_lstsq_depth_recovers_scale_and_shift():
    depth, fit = align_prediction((GT - 1.0) / 2.0, GT, "lstsq-depth")
    torch.testing.assert_close(depth, GT)
    assert fit == pytest.approx({"scale": 2.0, "shift": 1.0})


def test_lstsq_disparity_recovers_affine_disparity():
    disp = 3.0 / GT + 0.5  # what a MiDaS-style model predicts, up to scale and shift
    depth, fit = align_prediction(disp, GT, "lstsq-disparity", output="disparity", max_depth=10.0)
    torch.testing.assert_close(depth, GT)
    assert fit == pytest.approx({"scale": 1 / 3, "shift": -0.5 / 3})


def test_lstsq_matches_numpy_polyfit_on_noisy_data():
    rng = np.random.default_rng(0)
    p = torch.from_numpy(rng.uniform(0.1, 1.0, 500))
    g = torch.from_numpy(rng.uniform(1.0, 5.0, 500))
    s, t = np.polyfit(p.numpy(), g.numpy(), 1)
    _, fit = align_prediction(p, g, "lstsq-depth")
    assert fit == pytest.approx({"scale": s, "shift": t})


def test_median_inverts_disparity_first():
    depth, fit = align_prediction(1.0 / (4.0 * GT), GT, "median", output="disparity")
    torch.testing.assert_close(depth, GT)
    assert fit["scale"] == pytest.approx(0.25)  # 1 / disparity = 4 gt


def test_evaluate_depth_with_alignment_is_exact_and_reports_the_fit():
    gt = GT.view(10, 20).float()
    out = evaluate_depth(2.0 / gt + 1.0, gt, align="lstsq-disparity", output="disparity")
    assert out["rmse"] == pytest.approx(0.0, abs=1e-4) and out["delta1"] == 1.0
    assert out["scale"] == pytest.approx(0.5, rel=1e-4)


def test_bad_alignment_and_constant_prediction():
    with pytest.raises(InputError, match="valid: none, median"):
        align_prediction(GT, GT, "affine")
    with pytest.raises(InputError, match="constant"):
        align_prediction(torch.ones_like(GT), GT, "lstsq-depth")
