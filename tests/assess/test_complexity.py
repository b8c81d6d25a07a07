"""Sparseness and Complexity equal Quantus' on the same maps (the real METER maps and the random control), and
hand-computed values on tiny maps."""

import math

import numpy as np
import pytest
import torch

from depthscope.assess import AssessConfig, assess_image
from depthscope.assess.complexity import complexity, sparseness
from depthscope.explain import explain


def test_hand_values():
    # Gini of (0, 0, 0, 1) + eps: (2*4 - 4 - 1) / 4 = 0.75 up to the 1e-7 Quantus adds
    assert sparseness(torch.tensor([0.0, 0.0, 0.0, 2.0])) == pytest.approx(0.75, abs=1e-6)
    assert sparseness(torch.full((8, 8), 3.0)) == pytest.approx(0.0, abs=1e-12)
    assert complexity(torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(math.log(2), abs=1e-9)
    assert complexity(torch.tensor([5.0])) == pytest.approx(0.0, abs=1e-9)


def test_equal_to_quantus_on_meter_maps(meter_nyu, nyu):
    quantus = pytest.importorskip("quantus", reason="the parity test needs quantus (the [test] extra)")
    x = nyu[0].image[None]
    maps = explain(meter_nyu, x, ["saliency", "attention_rollout", "random"], "mean")
    a = np.stack([maps[m].magnitude.numpy() for m in maps]).astype(np.float64)  # (3, 1, H, W): Quantus in float64
    xs = np.repeat(x.numpy(), 3, 0)
    for ours, theirs in ((sparseness, quantus.Sparseness(disable_warnings=True)),
                         (complexity, quantus.Complexity(disable_warnings=True))):  # fmt: skip
        # one map per call: Quantus scales a batch by its maximum over all maps (normalise_by_max over every axis),
        # which makes a map's score depend on the others in its batch
        ref = [theirs(model=None, x_batch=xs[k : k + 1], y_batch=np.zeros(1, dtype=int), a_batch=a[k : k + 1].copy())[0]
               for k in range(3)]  # fmt: skip
        got = [ours(maps[m].magnitude[0]) for m in maps]
        # both in float64 (in float32, Quantus' weighted sum over 307,200 pixels rounds by ~1e-4 relative)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)


def test_in_an_assessment_row(meter_nyu, nyu):
    cfg = AssessConfig(methods=("saliency", "random"), metrics=("sparseness", "complexity"))
    rows = dict(assess_image(meter_nyu, nyu[0].image, cfg))
    assert rows["saliency"]["sparseness"] > rows["random"]["sparseness"]  # a gradient map is more concentrated
    assert rows["random"]["complexity"] == pytest.approx(math.log(480 * 640), abs=0.2)  # U(0, 1): near log N
