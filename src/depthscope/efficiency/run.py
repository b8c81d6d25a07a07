"""``pareto``: read profile and metrics files, write the frontier table, its plot and the EERs."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depthscope.efficiency.pareto import HIGHER_IS_BETTER, merge_results, pareto_table, summary_scores
from depthscope.errors import InputError
from depthscope.output.files import write_csv

DEFAULT_EER_METRICS = ("params", "flops", "latency_ms_median", "peak_memory_bytes")


def _read_json(path: str | os.PathLike, what: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {p}: no such file")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{what} {p}: not valid JSON ({e})") from None


def _read_summary(path: str | os.PathLike) -> list[dict[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"summary {p}: no such file")
    try:
        rows = list(csv.DictReader(p.read_text().splitlines()))
    except (csv.Error, UnicodeDecodeError) as e:
        raise InputError(f"summary {p}: not a CSV ({e})") from None
    if not rows or "model" not in rows[0] or "method" not in rows[0]:
        raise InputError(f"summary {p}: expected the summary.csv that `depthscope assess` or `compare` writes")
    return rows


def pareto(
    profile_json: str | os.PathLike | None,
    metrics_jsons: Sequence[str | os.PathLike],
    x: str,
    y: str,
    out: str | os.PathLike,
    reference: str | None = None,
    eer_metrics: Sequence[str] = DEFAULT_EER_METRICS,
    summaries: Sequence[str | os.PathLike] = (),
    method: str | None = None,
) -> list[dict[str, Any]]:
    """The Pareto frontier of models over any two of their costs, accuracies and explanation scores, and each
    model's EER.

    Args:
        profile_json: ``profile.json`` from :func:`depthscope.profile` (None: no costs).
        metrics_jsons: ``metrics.json`` files from :func:`depthscope.evaluate`, joined to the profile by model.
        x: the x metric (e.g. ``latency_ms_median``, ``macs``).
        y: the y metric (e.g. ``rmse``, or a summary column such as ``spearman`` or ``af_perturbation``).
        out: writes ``out/pareto.csv`` and ``out/pareto.png`` (the frontier as a staircase).
        reference: the model each row's EER (mean of model / reference over ``eer_metrics``) is taken against.
        eer_metrics: the metrics of the EER.
        summaries: ``summary.csv`` files of ``assess`` (rows per model) or ``compare`` (rows per model B); each
            score's mean is a column, with the direction the summary states.
        method: the attribution method whose summary rows are used (needed when a summary has several).

    Returns:
        One row per model: ``model``, ``x``, ``y``, ``on_frontier`` and, with ``reference``, ``eer``.

    Example:
        >>> import tempfile, depthscope as ds
        >>> from depthscope.data import find_data
        >>> d = tempfile.mkdtemp()
        >>> _ = ds.profile(["meter-xxs-nyu", "meter-xs"], f"{d}/p", (192, 256), counts_only=True, device="meta")
        >>> _ = ds.evaluate("meter-xxs-nyu", find_data(), out=f"{d}/e", limit=2)
        >>> rows = pareto(f"{d}/p/profile.json", [f"{d}/e/metrics.json"], "macs", "rmse", f"{d}/pareto")
        >>> [(r["model"], r["on_frontier"]) for r in rows if r["model"] == "meter-xxs-nyu"]
        [('meter-xxs-nyu', True)]
    """
    from depthscope.output.figures import pareto_figure

    profile = {} if profile_json is None else _read_json(profile_json, "profile")
    if not isinstance(profile, dict):
        raise InputError(f"profile {profile_json}: expected the object that `depthscope profile` writes")
    if profile_json is None and not metrics_jsons and not summaries:
        raise InputError("pareto needs at least one of --profile, --metrics, --summary")
    metrics = [_read_json(m, "metrics") for m in metrics_jsons]
    rows = {r["model"]: r for r in merge_results(profile, metrics)}
    higher = set(HIGHER_IS_BETTER)
    for path in summaries:
        scores, up = summary_scores(_read_summary(path), method, f"summary {path}")
        higher |= up
        for name, values in scores.items():
            rows.setdefault(name, {"model": name}).update(values)
    table = pareto_table(list(rows.values()), x, y, reference, eer_metrics, frozenset(higher))
    write_csv(Path(out) / "pareto.csv", table)
    pareto_figure(table, x, y, Path(out) / "pareto.png", frozenset(higher))
    return table
