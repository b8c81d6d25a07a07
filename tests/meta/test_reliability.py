"""Reliability and consistency statistics against independent references: the ``krippendorff`` package, SciPy's
Wilcoxon test, and values computed by hand."""

import numpy as np
import pytest

from depthscope.meta import cronbach_alpha, krippendorff_alpha, order_kept, paired_p
from depthscope.meta.consistency import got_worse

krippendorff = pytest.importorskip("krippendorff")


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_alpha_equals_the_krippendorff_package(level):
    rng = np.random.default_rng(0)
    for trial in range(5):
        truth = rng.integers(1, 6, size=12).astype(float)
        data = np.stack([np.clip(truth + rng.integers(-1, 2, size=12), 1, 5) for _ in range(4)])
        data[rng.random(data.shape) < 0.15] = np.nan  # missing ratings
        ours = krippendorff_alpha(data, level)
        theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert ours == pytest.approx(theirs, abs=1e-12), trial


def test_krippendorff_alpha_of_rankings_by_hand():
    same = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]])
    assert krippendorff_alpha(same) == pytest.approx(1.0)
    swapped = np.array([[1, 2], [2, 1]])  # two raters, opposite orders: systematic disagreement
    # coincidences o_12 = o_21 = 2, n_1 = n_2 = 2: observed 4, expected (2*2*2) / (4 - 1) = 8/3, alpha = 1 - 3/2
    assert krippendorff_alpha(swapped, "interval") == pytest.approx(-0.5)
    assert np.isnan(krippendorff_alpha(np.ones((3, 2))))


def test_cronbach_alpha_by_hand():
    items = np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 5.0]])
    # item variances 1 and 7/3, total (3, 5, 8) variance 19/3: 2 * (1 - (10/3) / (19/3)) = 18/19
    assert cronbach_alpha(items) == pytest.approx(18 / 19)
    assert cronbach_alpha(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])) == pytest.approx(1.0)


def test_consistency_pieces_by_hand():
    assert paired_p([1, 2, 3], [1, 2, 3]) == 1.0  # nothing moved
    assert paired_p(range(6), [v + 1 for v in range(6)]) == pytest.approx(2 / 64)  # exact: all 6 signs alike
    assert order_kept([1, 2, 3], [3, 2, 1]) == 0.0 and order_kept([1, 2, 3], [1, 3, 2]) == pytest.approx(2 / 3)
    assert got_worse(0.5, 0.4, higher_is_better=True) and got_worse(0.5, 0.6, higher_is_better=False)
    assert not got_worse(0.5, 0.5, higher_is_better=True)
