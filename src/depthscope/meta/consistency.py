"""MetaQuantus-style consistency of a metric's scores (Hedström et al., TMLR 2023), for dense targets: under minor
perturbations (noise resilience, NR) a reliable metric's scores stay put and keep the methods' order; under
disruptive ones (adversarial reactivity, AR) they move, and for the worse. Each statistic is in [0, 1]:

- intra-consistency (IAC): per method, Wilcoxon's signed-rank p-value of the paired scores before and after
  (NR: the p-value, high when nothing moved; AR: 1 - p);
- inter-consistency (IEC): NR, the share of method pairs whose order is kept on each image; AR, the share of
  (image, method) scores that got worse in the metric's own direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import wilcoxon


def paired_p(before: Sequence[float], after: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired scores (exact for small samples); 1.0 when every pair is
    equal (nothing moved), NaN with fewer than one pair.

    Example:
        >>> paired_p([1, 2, 3], [1, 2, 3]), round(paired_p([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7]), 4)
        (1.0, 0.0312)
    """
    b, a = np.asarray(before, float), np.asarray(after, float)
    keep = np.isfinite(b) & np.isfinite(a)
    b, a = b[keep], a[keep]
    if b.size == 0:
        return float("nan")
    if np.all(a == b):
        return 1.0
    return float(wilcoxon(b, a, zero_method="zsplit").pvalue)


def order_kept(before: Sequence[float], after: Sequence[float]) -> float:
    """Share of method pairs whose strict order is the same in ``after`` as in ``before`` (a pair tied in both
    counts as kept); NaN for fewer than two methods.

    Example:
        >>> order_kept([1, 2, 3], [1, 3, 2]), order_kept([1, 2, 3], [10, 20, 30])
        (0.6666666666666666, 1.0)
    """
    b, a = np.asarray(before, float), np.asarray(after, float)
    i, j = np.triu_indices(b.size, 1)
    if i.size == 0:
        return float("nan")
    return float(np.mean(np.sign(b[i] - b[j]) == np.sign(a[i] - a[j])))


def got_worse(before: float, after: float, higher_is_better: bool) -> bool:
    """Whether ``after`` is a worse score than ``before`` in the metric's direction."""
    return after < before if higher_is_better else after > before
