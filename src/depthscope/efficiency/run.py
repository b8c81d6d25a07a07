"""``pareto``: read profile and metrics files, write the frontier table, its plot and the EERs."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from depthscope.efficiency.pareto import merge_results, pareto_table
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


def pareto(
    profile_json: str | os.PathLike,
    metrics_jsons: Sequence[str | os.PathLike],
    x: str,
    y: str,
    out: str | os.PathLike,
    reference: str | None = None,
    eer_metrics: Sequence[str] = DEFAULT_EER_METRICS,
) -> list[dict[str, Any]]:
    """The Pareto frontier of profiled models over two lower-is-better metrics, and each model's EER.

    Args:
        profile_json: ``profile.json`` from :func:`depthscope.profile`.
        metrics_jsons: ``metrics.json`` files from :func:`depthscope.evaluate`, joined to the profile by model.
        x: the x metric (e.g. ``latency_ms_median``, ``macs``).
        y: the y metric (e.g. ``rmse``).
        out: writes ``out/pareto.csv`` and ``out/pareto.png`` (the frontier as a staircase).
        reference: the model each row's EER (mean of model / reference over ``eer_metrics``) is taken against.
        eer_metrics: the metrics of the EER.

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

    profile = _read_json(profile_json, "profile")
    if not isinstance(profile, dict):
        raise InputError(f"profile {profile_json}: expected the object that `depthscope profile` writes")
    metrics = [_read_json(m, "metrics") for m in metrics_jsons]
    rows = merge_results(profile, metrics)
    table = pareto_table(rows, x, y, reference, eer_metrics)
    write_csv(Path(out) / "pareto.csv", table)
    pareto_figure(table, x, y, Path(out) / "pareto.png")
    return table
