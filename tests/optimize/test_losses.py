"""METER's balanced loss against independent references: scikit-image's SSIM, scipy's Sobel, hand values."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from depthscope.ops.stats import ssim
from depthscope.optimize.losses import BalancedLoss, sobel


def _maps(seed=0, shape=(2, 1, 40, 52)):
    g = torch.Generator().manual_seed(seed)
    a = 300 + 200 * torch.rand(shape, generator=g)
    b = a + 40 * torch.randn(shape, generator=g)
    return a, b


def test_ssim_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    a, b = _maps()
    for i in range(a.shape[0]):
        ours = ssim(a[i : i + 1], b[i : i + 1], value_range=1000.0).item()
        ref = skm.structural_similarity(
            a[i, 0].double().numpy(), b[i, 0].double().numpy(), data_range=1000.0,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        )  # fmt: skip
        assert ours == pytest.approx(ref, rel=1e-4)
    assert ssim(a, a, 1000.0).item() == pytest.approx(1.0, abs=1e-6)


def test_sobel_matches_scipy_and_a_ramp():
    a, _ = _maps()
    dx, dy = sobel(a)
    x = a[0, 0].double().numpy()
    # scipy correlates with [-1, 0, 1]; the authors' kernel is [1, 0, -1]: the opposite sign
    np.testing.assert_allclose(dx[0, 0].numpy(), -ndimage.sobel(x, axis=1, mode="constant"), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(dy[0, 0].numpy(), -ndimage.sobel(x, axis=0, mode="constant"), rtol=1e-5, atol=1e-3)
    ramp = 3.0 * torch.arange(10.0).expand(1, 1, 8, 10)  # d = 3 * column
    assert torch.allclose(sobel(ramp)[0][..., 1:-1, 1:-1], torch.full((6, 8), -8 * 3.0))  # 4 weights x (-2 * 3)


def test_balanced_loss_terms_against_formulas():
    a, b = _maps(1)
    terms = BalancedLoss().terms(a, b)
    assert terms["depth"].item() == pytest.approx((a - b).abs().mean().item(), rel=1e-6)
    x, y = a[:, 0].numpy().astype(np.float64), b[:, 0].numpy().astype(np.float64)

    def per_image(v, axis):  # 2-D filters: on a 3-D array scipy would also smooth across the batch
        return np.stack([-ndimage.sobel(im, axis=axis, mode="constant") for im in v])

    gx = [per_image(v, 1) for v in (x, y)]
    gy = [per_image(v, 0) for v in (x, y)]
    grad = np.abs(gx[0] - gx[1]).mean() + np.abs(gy[0] - gy[1]).mean()
    assert terms["grad"].item() == pytest.approx(2.0 * grad, rel=1e-4)  # the authors divide by 0.5
    n = [np.stack([-gx[i], -gy[i], np.ones_like(x)]) for i in (0, 1)]
    cos = (n[0] * n[1]).sum(0) / (np.linalg.norm(n[0], axis=0) * np.linalg.norm(n[1], axis=0))
    assert terms["normal"].item() == pytest.approx(100 * np.abs(1 - cos).mean(), rel=1e-3)
    assert BalancedLoss()(a, a).item() == pytest.approx(0.0, abs=1e-4)
