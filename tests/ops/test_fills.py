"""ROAD's noisy linear imputation against Quantus' implementation (the ROAD authors' code, adapted)."""

import numpy as np
import pytest
import torch

from depthscope.ops.fills import linear_imputation

quantus_perturb = pytest.importorskip("quantus.functions.perturb_func")


def test_linear_imputation_equals_quantus_and_keeps_the_other_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 12, 17, generator=g)
    masks = (torch.rand(3, 1, 12, 17, generator=g) < 0.4).float()
    masks[2] = 0
    masks[2, 0, :, 0] = 1  # a whole column on the image edge: neighbours outside the image do not count
    ours = linear_imputation(x, masks, noise=0)
    for k in range(3):
        idx = np.flatnonzero(masks[k, 0].numpy().ravel())
        theirs = quantus_perturb.noisy_linear_imputation(x[0].double().numpy(), idx, indexed_axes=[1, 2], noise=0.0)
        assert np.abs(theirs - ours[k].double().numpy()).max() < 1e-6  # float32 storage of a float64 solve
        keep = masks[k, 0] == 0
        assert torch.equal(ours[k][:, keep], x[0][:, keep])


def test_noise_is_seeded_and_only_on_imputed_pixels():
    x = torch.full((1, 3, 8, 8), 0.5)
    m = torch.zeros(1, 1, 8, 8)
    m[..., 2:5, 2:5] = 1
    a, b = linear_imputation(x, m, noise=0.01, seed=3), linear_imputation(x, m, noise=0.01, seed=3)
    assert torch.equal(a, b)
    inside = a[0][:, 2:5, 2:5] - 0.5  # the imputation of a constant image is the constant
    assert 0.002 < float(inside.std()) < 0.03
    assert float((a[0] - 0.5)[:, m[0, 0] == 0].abs().max()) == 0
