"""Pareto frontiers and the Efficient Error Rate (SPEC §5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from depthscope.errors import InputError, warn

# accuracy keys of metrics.json: a model without them was not evaluated
METRIC_KEYS = ("mae", "rmse", "rmse_log", "abs_rel", "sq_rel", "log10", "silog", "delta1", "delta2", "delta3")

Row = Mapping[str, Any]


def _value(row: Row, key: str) -> float:
    if key not in row or row[key] is None:
        raise InputError(f"{row.get('model', '?')}: no value for {key!r}; available: {', '.join(sorted(row))}")
    return float(row[key])


def dominates(a: Row, b: Row, x: str, y: str) -> bool:
    """``a`` is at least as good as ``b`` on both (lower is better) and strictly better on one."""
    ax, ay, bx, by = _value(a, x), _value(a, y), _value(b, x), _value(b, y)
    return ax <= bx and ay <= by and (ax < bx or ay < by)


def pareto_front(rows: Sequence[Row], x: str, y: str) -> list[Row]:
    """The non-dominated rows over metrics ``x`` and ``y`` (both lower-is-better), sorted by ``x``.

    For a higher-is-better metric (``delta1``), pass its negation or a lower-is-better twin (``1 - delta1``)."""
    front = [r for r in rows if not any(dominates(o, r, x, y) for o in rows if o is not r)]
    return sorted(front, key=lambda r: (_value(r, x), _value(r, y)))


def eer(model: Row, reference: Row, metrics: Sequence[str]) -> float:
    """Efficient Error Rate: the mean over ``metrics`` of ``model[i] / reference[i]`` (lower is better; a model
    against itself is exactly 1)."""
    if not metrics:
        raise InputError("EER needs at least one metric")
    ratios = []
    for m in metrics:
        ref = _value(reference, m)
        if ref == 0:
            raise InputError(f"EER: reference {reference.get('model', '?')} has {m} = 0; the ratio is undefined")
        ratios.append(_value(model, m) / ref)
    return sum(ratios) / len(ratios)


def merge_results(profile: Mapping[str, Row], metrics: Sequence[Row]) -> list[dict[str, Any]]:
    """One row per model: its profile (cost) joined with its evaluation metrics (``metrics.json`` of
    ``depthscope evaluate``, which names its model). Models without metrics keep only their costs."""
    rows = {name: {"model": name, **dict(r)} for name, r in profile.items()}
    for m in metrics:
        name = m.get("model")
        if name is None:
            raise InputError("a metrics file has no 'model' field; use the metrics.json that evaluate writes")
        rows.setdefault(name, {"model": name}).update(m)
    return list(rows.values())


def pareto_table(
    rows: Sequence[Row], x: str, y: str, reference: str | None = None, eer_metrics: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rows with ``x``, ``y``, whether each is on the frontier and (with ``reference``) its EER."""
    usable = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    for r in rows:  # never silently: each model left out is named with its reason
        missing = [k for k in (x, y) if r.get(k) is None]
        if missing:
            hint = " (no metrics.json of `depthscope evaluate` names it)" if set(missing) & set(METRIC_KEYS) else ""
            warn(f"pareto: {r.get('model', '?')} is left out: it has no {' and no '.join(missing)}{hint}")
        elif r.get("weights") == "random" and ({x, y} & set(METRIC_KEYS)):
            warn(f"pareto: {r['model']} was evaluated with random weights: its accuracy is not a trained model's")
    if not usable:
        raise InputError(f"no model has both {x!r} and {y!r}")
    front = {id(r) for r in pareto_front(usable, x, y)}
    ref = None
    if reference is not None:
        ref = next((r for r in rows if r.get("model") == reference), None)
        if ref is None:
            raise InputError(f"reference {reference!r} is not among the models: {', '.join(r['model'] for r in rows)}")
    table = []
    for r in sorted(usable, key=lambda r: (float(r[x]), float(r[y]))):
        row = {"model": r["model"], x: float(r[x]), y: float(r[y]), "on_frontier": id(r) in front}
        if "weights" in r:
            row["weights"] = "random" if r["weights"] == "random" else "trained"
        if ref is not None:
            row["eer"] = eer(r, ref, eer_metrics)
        table.append(row)
    return table
