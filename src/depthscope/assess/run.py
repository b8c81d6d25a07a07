"""Dataset-level assessment (models x methods x images), resumable: one row per finished (model, method, image)
is appended to ``results.csv`` and fsynced; a rerun skips what is there, so an interrupted run loses nothing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthscope.assess.fidelity import (
    DEFAULT_INFIDELITY_SIGMA,
    DEFAULT_N_PERTURBATIONS,
    DEFAULT_SYMMETRIC_INFIDELITY,
    af_depth_correlation,
    af_perturbation,
    faithfulness_score,
    infidelity_score,
    noise_draws,
    subset_draws,
)
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, ORDERS, perturbation_curves
from depthscope.data.datasets import DepthDataset, open_dataset
from depthscope.errors import InputError
from depthscope.explain import METHODS, explain, target_model
from depthscope.explain.gradients import tune_chunk_size
from depthscope.models import DepthModel, load_model
from depthscope.report.files import CsvAppender, write_csv, write_json

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
    methods: str | Sequence[str],
    gt: torch.Tensor | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    replacement: str = "mean",
    patch: int = 1,
    seed: int = 0,
    method_options: dict[str, dict[str, Any]] | None = None,
    n_perturbations: int = DEFAULT_N_PERTURBATIONS,
    chunk_size: int | str = "auto",
    symmetric_infidelity: bool = DEFAULT_SYMMETRIC_INFIDELITY,
    infidelity_sigma: float = DEFAULT_INFIDELITY_SIGMA,
    infidelity_control_variate: bool = True,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields ``(method, scores)`` for each method's map (whole-map mean target) on one image ``(3, H, W)`` as
    soon as that method is done, so callers can save each before the next starts.

    The random draws of Infidelity and the Faithfulness Estimate (and the model's responses to them) do not depend
    on the map: they are run once per image and shared by every method, so methods are compared on the same draws.
    ``infidelity_control_variate`` applies to differentiable models only (an int8 model's Infidelity is the plain
    Monte-Carlo estimate of the same expectation, with its wider CI).
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    method_options = method_options or {}
    x = image.unsqueeze(0) if image.dim() == 3 else image
    fm = target_model(model, x, "mean")
    control_variate = infidelity_control_variate and model.differentiable
    noise = noise_draws(
        fm, x, n_perturbations, infidelity_sigma, seed, chunk_size, symmetric_infidelity, control_variate
    )
    subsets = subset_draws(fm, x, n_perturbations, seed=seed, chunk_size=chunk_size)
    with torch.no_grad():
        depth = model(x)[0, 0]
    for method in methods:
        t0 = time.perf_counter()
        opts = method_options.get(method)
        attr = explain(model, x, method, "mean", {method: opts} if opts else None)[method]
        seconds = time.perf_counter() - t0
        score = attr.magnitude[0]
        curves = perturbation_curves(model, x, score, fractions, replacement, patch, seed, gt, chunk_size)
        inf = infidelity_score(noise, attr.raw)
        fe = faithfulness_score(subsets, attr.signed)
        yield (
            method,
            {
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
            },
        )


def resume_settings(path: Path, settings: dict[str, Any]) -> dict[str, int]:
    """The forward chunk sizes of an earlier run in ``path`` (empty for a new run); a rerun with other settings
    is refused rather than mixing incomparable rows in one results.csv."""
    if not path.exists():
        write_json(path, {**settings, "forward_chunk_size": {}})
        return {}
    before = json.loads(path.read_text())
    chunks = before.pop("forward_chunk_size", {})
    changed = sorted(k for k in settings if before.get(k) != settings[k])
    if changed:
        raise InputError(
            f"{path.parent} holds a run with other settings ({', '.join(changed)}); "
            "use another --out or the same settings"
        )
    return chunks


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
    n_perturbations: int = DEFAULT_N_PERTURBATIONS,
    method_options: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
    symmetric_infidelity: bool = DEFAULT_SYMMETRIC_INFIDELITY,
    infidelity_sigma: float = DEFAULT_INFIDELITY_SIGMA,
    infidelity_control_variate: bool = True,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Assess ``methods`` on ``models`` over ``data``; writes ``results.csv`` (append-only, resumable),
    ``summary.csv`` and ``curves.png`` in ``out`` and returns the summary rows."""
    from depthscope.report.figures import curves_figure

    for m in methods:
        METHODS.get(m)  # unknown names fail before any work
    if not infidelity_sigma > 0:
        raise InputError(f"infidelity_sigma must be > 0 (noise std in the [0, 1] pixel range), got {infidelity_sigma}")
    out = Path(out)
    method_options = method_options or {}
    settings = {
        "fractions": [float(f) for f in fractions],
        "replacement": replacement,
        "patch": patch,
        "n_perturbations": n_perturbations,
        "symmetric_infidelity": symmetric_infidelity,
        "infidelity_sigma": infidelity_sigma,
        "infidelity_control_variate": infidelity_control_variate,
        "method_options": json.loads(json.dumps(method_options, default=str)),
    }
    chunks = resume_settings(out / "settings.json", settings)
    sink = CsvAppender(out / "results.csv", COLUMNS)
    done = {(r["model"], r["method"], r["image"]) for r in sink.rows}
    for model in models:
        model = load_model(model, device=device) if isinstance(model, str) else model
        ds = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
        n = len(ds) if limit is None else min(limit, len(ds))
        if model.name not in chunks and n > 0:
            # Chosen by measurement once, then kept in settings.json: a resumed run batches exactly as the first
            # did, so its scores are the same to the last bit (batch composition changes float rounding).
            x0 = ds[0].image[None].to(device)
            chunks[model.name] = tune_chunk_size(model, x0, len(ORDERS) * len(settings["fractions"]), backward=False)
            write_json(out / "settings.json", {**settings, "forward_chunk_size": chunks})
        bar = tqdm(total=n * len(methods), desc=f"assess {model.name}", disable=not progress)
        for i in range(n):
            # Pairs datasets know an image's name before decoding it: finished images are not read again.
            known = ds.pairs[i][0].stem if hasattr(ds, "pairs") else None
            if known is not None and all((model.name, m, known) in done for m in methods):
                bar.update(len(methods))
                continue
            s = ds[i]
            todo = [m for m in methods if (model.name, m, s.name) not in done]
            if todo:
                finished = assess_image(
                    model,
                    s.image.to(device),
                    todo,
                    None if s.depth is None else s.depth.to(device),
                    fractions,
                    replacement,
                    patch,
                    seed=i,
                    method_options=method_options,
                    n_perturbations=n_perturbations,
                    chunk_size=chunks[model.name],
                    symmetric_infidelity=symmetric_infidelity,
                    infidelity_sigma=infidelity_sigma,
                    infidelity_control_variate=infidelity_control_variate,
                )
                for method, scores in finished:  # one fsynced row per finished (model, method, image)
                    sink.append({"model": model.name, "method": method, "image": s.name, **scores})
            bar.update(len(methods))
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
