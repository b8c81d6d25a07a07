"""Dataset-level assessment (models x methods x images), resumable: one row per finished (model, method, image)
is appended to ``results.csv`` and fsynced; a rerun skips what is there, so an interrupted run loses nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthscope.assess.fidelity import af_depth_correlation, af_perturbation, faithfulness_estimate, infidelity
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, ORDERS, perturbation_curves
from depthscope.data.datasets import DepthDataset, open_dataset
from depthscope.explain import METHODS, explain, target_model
from depthscope.models import DepthModel, load_model
from depthscope.report.files import CsvAppender, write_csv

SCORES = (
    "af_perturbation",
    "af_depth_correlation",
    "morf_auc",
    "lerf_auc",
    "random_auc",
    "infidelity",
    "faithfulness_estimate",
)
COLUMNS = (
    "model",
    "method",
    "image",
    *SCORES,
    "infidelity_n",
    "infidelity_ci_low",
    "infidelity_ci_high",
    "faithfulness_n",
    "faithfulness_ci_low",
    "faithfulness_ci_high",
    "seconds_per_map",
    "morf_curve",
    "lerf_curve",
    "random_curve",
    "fractions",
)


def assess_image(
    model: DepthModel,
    image: torch.Tensor,
    method: str,
    gt: torch.Tensor | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    replacement: str = "mean",
    patch: int = 1,
    seed: int = 0,
    method_options: dict[str, Any] | None = None,
    n_perturbations: int = 32,
) -> dict[str, Any]:
    """All scores of one method's map (whole-map mean target) on one image ``(3, H, W)``."""
    import time

    x = image.unsqueeze(0) if image.dim() == 3 else image
    t0 = time.perf_counter()
    attr = explain(model, x, method, "mean", {method: method_options} if method_options else None)[method]
    seconds = time.perf_counter() - t0
    score = attr.magnitude[0]
    curves = perturbation_curves(model, x, score, fractions, replacement, patch, seed, gt)
    with torch.no_grad():
        depth = model(x)[0, 0]
    fm = target_model(model, x, "mean")
    inf = infidelity(fm, x, attr.raw, n_perturbations, seed=seed)
    fe = faithfulness_estimate(fm, x, attr.signed, n_perturbations, seed=seed)
    return {
        "af_perturbation": af_perturbation(curves.rmse["morf"], curves.rmse["lerf"]),
        "af_depth_correlation": af_depth_correlation(score, depth),
        **{f"{o}_auc": curves.auc(o) for o in ORDERS},
        "infidelity": inf.value,
        "infidelity_n": inf.n,
        "infidelity_ci_low": inf.ci_low,
        "infidelity_ci_high": inf.ci_high,
        "faithfulness_estimate": fe.value,
        "faithfulness_n": fe.n,
        "faithfulness_ci_low": fe.ci_low,
        "faithfulness_ci_high": fe.ci_high,
        "seconds_per_map": seconds,
        **{f"{o}_curve": json.dumps([round(v, 6) for v in curves.rmse[o]]) for o in ORDERS},
        "fractions": json.dumps(curves.fractions),
    }


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std per (model, method), like the paper's table."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"]), []).append(r)
    out = []
    for (model, method), rs in groups.items():
        row: dict[str, Any] = {"model": model, "method": method, "n_images": len(rs)}
        for s in SCORES:
            vals = np.array([float(r[s]) for r in rs])
            row[f"{s}_mean"], row[f"{s}_std"] = float(vals.mean()), float(vals.std())
        out.append(row)
    return out


def assess(
    models: Sequence[DepthModel | str],
    data: DepthDataset | str | os.PathLike,
    methods: Sequence[str],
    out: str | os.PathLike,
    limit: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    replacement: str = "mean",
    patch: int = 1,
    n_perturbations: int = 32,
    method_options: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Assess ``methods`` on ``models`` over ``data``; writes ``results.csv`` (append-only, resumable),
    ``summary.csv`` and ``curves.png`` in ``out`` and returns the summary rows."""
    from depthscope.report.figures import curves_figure

    for m in methods:
        METHODS.get(m)  # unknown names fail before any work
    out = Path(out)
    sink = CsvAppender(out / "results.csv", COLUMNS)
    done = {(r["model"], r["method"], r["image"]) for r in sink.rows}
    method_options = method_options or {}
    for model in models:
        model = load_model(model, device=device) if isinstance(model, str) else model
        ds = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
        n = len(ds) if limit is None else min(limit, len(ds))
        bar = tqdm(total=n * len(methods), desc=f"assess {model.name}", disable=not progress)
        for i in range(n):
            # Pairs datasets know an image's name before decoding it: finished images are not read again.
            known = ds.pairs[i][0].stem if hasattr(ds, "pairs") else None
            if known is not None and all((model.name, m, known) in done for m in methods):
                bar.update(len(methods))
                continue
            s = ds[i]
            for method in methods:
                if (model.name, method, s.name) not in done:
                    scores = assess_image(
                        model,
                        s.image.to(device),
                        method,
                        None if s.depth is None else s.depth.to(device),
                        fractions,
                        replacement,
                        patch,
                        seed=i,
                        method_options=method_options.get(method),
                        n_perturbations=n_perturbations,
                    )
                    sink.append({"model": model.name, "method": method, "image": s.name, **scores})
                bar.update()
        bar.close()
    summary = summarize(sink.rows)
    write_csv(out / "summary.csv", summary)
    curves: dict[str, dict[str, list[list[float]]]] = {}
    for r in sink.rows:
        key = r["method"] if len(models) == 1 else f"{r['model']}/{r['method']}"
        for o in ORDERS:
            curves.setdefault(key, {}).setdefault(o, []).append(json.loads(r[f"{o}_curve"]))
    if sink.rows:
        curves_figure(curves, json.loads(sink.rows[0]["fractions"]), out / "curves.png")
    return summary
