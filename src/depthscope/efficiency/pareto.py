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


# keys of profile.json / metrics.json where a larger value is the better one (everything else: lower is better);
# assess and compare summaries state each column's direction themselves (``<column>_better``)
HIGHER_IS_BETTER = frozenset({"delta1", "delta2", "delta3", "onnxruntime_speedup"})


def _cost(row: Row, key: str, higher: frozenset[str]) -> float:
    """``row[key]`` oriented so that lower is better."""
    v = _value(row, key)
    return -v if key in higher else v


def dominates(a: Row, b: Row, x: str, y: str, higher: frozenset[str] = HIGHER_IS_BETTER) -> bool:
    """``a`` is at least as good as ``b`` on both metrics and strictly better on one (a metric in ``higher`` is
    better when larger, any other when smaller)."""
    ax, ay, bx, by = (_cost(r, k, higher) for r, k in ((a, x), (a, y), (b, x), (b, y)))
    return ax <= bx and ay <= by and (ax < bx or ay < by)


def pareto_front(rows: Sequence[Row], x: str, y: str, higher: frozenset[str] = HIGHER_IS_BETTER) -> list[Row]:
    """The non-dominated rows over metrics ``x`` and ``y``, sorted by ``x``; ``higher`` names the metrics where
    larger is better (default: the accuracy deltas and the ONNX Runtime speed-up; all others lower-is-better).

    Example:
        >>> rows = [{"model": "a", "ms": 1, "spearman": 0.5}, {"model": "b", "ms": 2, "spearman": 0.9},
        ...         {"model": "c", "ms": 3, "spearman": 0.8}]
        >>> [r["model"] for r in pareto_front(rows, "ms", "spearman", frozenset({"spearman"}))]
        ['a', 'b']
    """
    front = [r for r in rows if not any(dominates(o, r, x, y, higher) for o in rows if o is not r)]
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


def summary_scores(
    rows: Sequence[Row], method: str | None, origin: str
) -> tuple[dict[str, dict[str, float]], set[str]]:
    """The per-model scores of an ``assess`` or ``compare`` summary (rows per model and method, each score as
    ``<s>_mean`` with its direction ``<s>_better``) for one ``method``: ``({model: {s: mean}}, {s higher is
    better})``. A summary of several methods needs ``method``; a missing one is an error listing those there."""
    methods = sorted({str(r.get("method")) for r in rows})
    if method is None:
        if len(methods) > 1:
            raise InputError(f"{origin} summarises several methods ({', '.join(methods)}); choose one with --method")
        method = methods[0] if methods else None
    chosen = [r for r in rows if r.get("method") == method]
    if not chosen:
        raise InputError(f"{origin}: no rows of method {method!r}; it has {', '.join(methods) or 'none'}")
    out: dict[str, dict[str, float]] = {}
    higher = set()
    for r in chosen:
        scores = out.setdefault(str(r["model"]), {})
        for key, v in r.items():
            if key.endswith("_mean") and v not in (None, ""):
                s = key.removesuffix("_mean")
                scores[s] = float(v)
                if r.get(s + "_better") == "higher":
                    higher.add(s)
    return out, higher


def pareto_table(
    rows: Sequence[Row],
    x: str,
    y: str,
    reference: str | None = None,
    eer_metrics: Sequence[str] = (),
    higher: frozenset[str] = HIGHER_IS_BETTER,
) -> list[dict[str, Any]]:
    """Rows with ``x``, ``y``, whether each is on the frontier (``higher``: the metrics where larger is better)
    and (with ``reference``) its EER."""
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
    front = {id(r) for r in pareto_front(usable, x, y, higher)}
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
