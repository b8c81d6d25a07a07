"""Reliability statistics of method rankings (Tomsett et al., AAAI 2020, "Sanity checks for saliency metrics"):
Krippendorff's alpha of the rankings a metric gives on different images (do images agree which method is best?),
and Cronbach's alpha of several metrics read as items of one scale (do the metrics measure one thing?)."""

from __future__ import annotations

import numpy as np


def _delta2(values: np.ndarray, counts: np.ndarray, level: str) -> np.ndarray:
    """Squared distances between the distinct ``values`` (ascending) for Krippendorff's ``level``."""
    if level == "interval":
        return (values[:, None] - values[None, :]) ** 2
    if level == "ordinal":  # distances count the pairable values between two ranks (Krippendorff 2011, eq. 7)
        cum = np.cumsum(counts)
        lo = np.minimum.outer(np.arange(len(values)), np.arange(len(values)))
        hi = np.maximum.outer(np.arange(len(values)), np.arange(len(values)))
        between = cum[hi] - np.where(lo > 0, cum[lo - 1], 0)
        return (between - (counts[lo] + counts[hi]) / 2) ** 2
    if level == "nominal":
        return (values[:, None] != values[None, :]).astype(float)
    raise ValueError(f"unknown level {level!r}: nominal, ordinal or interval")


def krippendorff_alpha(data: np.ndarray, level: str = "ordinal") -> float:
    """Krippendorff's alpha of ``data`` ``(raters, units)`` (NaN: missing): 1 perfect agreement, 0 agreement at
    chance, below 0 systematic disagreement. For rankings, images are the raters and methods the units.

    Example:
        >>> round(krippendorff_alpha(np.array([[1, 2, 3], [1, 2, 3]])), 6), krippendorff_alpha(np.array([[1, 2], [2, 1]])) < 0
        (1.0, True)
    """
    data = np.asarray(data, dtype=float)
    values = np.unique(data[np.isfinite(data)])
    if values.size < 2:
        return float("nan")  # one value throughout: no variation to agree on
    index = {v: i for i, v in enumerate(values)}
    coincidences = np.zeros((values.size, values.size))
    for unit in data.T:
        seen = unit[np.isfinite(unit)]
        m = seen.size
        if m < 2:
            continue
        ids = np.array([index[v] for v in seen])
        pair = np.zeros((values.size, values.size))
        np.add.at(pair, (ids[:, None], ids[None, :]), 1.0)
        pair[np.diag_indices(values.size)] -= np.bincount(ids, minlength=values.size)  # no value paired with itself
        coincidences += pair / (m - 1)
    counts = coincidences.sum(1)
    n = counts.sum()
    d2 = _delta2(values, counts, level)
    observed = (coincidences * d2).sum()
    expected = (np.outer(counts, counts) * d2).sum() / (n - 1)
    return float(1 - observed / expected) if expected > 0 else float("nan")


def cronbach_alpha(items: np.ndarray) -> float:
    """Cronbach's alpha of ``items`` ``(subjects, k)``: ``k / (k - 1) (1 - sum var(item) / var(sum))``, sample
    variances. 1 when every item orders the subjects alike; near 0 (or below) when they are unrelated.

    Example:
        >>> x = np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 5.0]])
        >>> round(cronbach_alpha(x), 4)
        0.9474
    """
    items = np.asarray(items, dtype=float)
    k = items.shape[1]
    if k < 2:
        return float("nan")
    total = items.sum(1).var(ddof=1)
    return float(k / (k - 1) * (1 - items.var(axis=0, ddof=1).sum() / total)) if total > 0 else float("nan")
