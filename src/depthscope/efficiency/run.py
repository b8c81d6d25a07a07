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
    """Frontier of the profiled models over ``x`` and ``y`` (lower is better): writes ``out/pareto.csv`` and
    ``out/pareto.png``; with ``reference``, each row's EER over ``eer_metrics`` against that model."""
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
