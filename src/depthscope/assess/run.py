"""Dataset-level assessment (models x methods x images), resumable: one row per finished (model, method, image)
is appended to ``results.csv`` and fsynced; a rerun skips what is there, so an interrupted run loses nothing.
Columns, summary and settings all come from the chosen metrics (:mod:`depthscope.assess.registry`)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthscope.assess.config import AssessConfig
from depthscope.assess.perturbation import ORDERS
from depthscope.assess.registry import Column, ImageContext
from depthscope.config import flatten
from depthscope.data.datasets import DepthDataset, check_limit, open_dataset
from depthscope.errors import InputError, warn
from depthscope.explain import explain, target_model
from depthscope.models import DepthModel, load_model
from depthscope.ops.batching import tune_chunk_size
from depthscope.output.figures import curves_figure
from depthscope.output.files import CsvAppender, RunLock, write_csv, write_json

KEY_COLUMNS = ("model", "method", "image")
RUN_COLUMNS = (Column("seconds_per_map", higher_is_better=False, summarised=False, unit="s"),)  # by the runner
CHUNK_PROBE = 32  # perturbed inputs per image the forward chunk size is tuned for (31 curve inputs by default)


def assess_image(
    model: DepthModel,
    image: torch.Tensor,
    config: AssessConfig | None = None,
    gt: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int | str = "auto",
    on_phase: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Scores of every method's map (whole-map mean target) on one image, method by method.

    Each metric's ``prepare`` runs once for the image (its random draws and the model's responses to them do not
    depend on the map), so every method is scored on the same draws.

    Args:
        model: the model.
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1].
        config: methods, metrics and their options (default :class:`AssessConfig`).
        gt: ground-truth depth ``(H, W)`` in metres, if any.
        seed: this image's seed (a dataset run uses ``config.seed + index``).
        chunk_size: perturbed inputs per forward (``"auto"``: measured).
        on_phase: called with the name of each phase as it starts (a metric's draws, a method's map), so a
            progress bar can say where an image's time goes.

    Yields:
        ``(method, {column: value})`` as soon as that method is done, so a caller can save it before the next.
    """
    config = config or AssessConfig()
    x = image.unsqueeze(0) if image.dim() == 3 else image
    with torch.no_grad():
        depth = model(x)[0, 0]
    ctx = ImageContext(model, target_model(model, x, "mean"), x, depth, gt, seed, chunk_size)
    metrics = config.build_metrics()
    phase = on_phase or (lambda name: None)
    prepared = {}
    for name, m in metrics.items():
        phase(f"{name}: draws")
        prepared[name] = m.prepare(ctx)
    for method in config.methods:
        phase(method)
        t0 = time.perf_counter()
        opts = config.method_options.get(method)
        attr = explain(model, x, method, "mean", {method: opts} if opts else None, seed=seed)[method]
        row: dict[str, Any] = {"seconds_per_map": time.perf_counter() - t0}
        for name, m in metrics.items():
            row |= m.score(prepared[name], attr)
        yield method, row


def resume_settings(path: Path, settings: dict[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """The forward chunk sizes and model weights of an earlier run in ``path`` (empty for a new run); a rerun with
    other settings is refused, naming them, rather than mixing incomparable rows in one results.csv."""
    if not path.exists():
        write_json(path, {**settings, "forward_chunk_size": {}, "model_weights": {}})
        return {}, {}
    before = json.loads(path.read_text())
    chunks = before.pop("forward_chunk_size", {})
    weights = before.pop("model_weights", {})
    old, new = flatten(before), flatten(settings)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        raise InputError(
            f"{path.parent} holds a run with other settings ({', '.join(changed)}); "
            "use another --out or the same settings"
        )
    return chunks, weights


def summary_columns(config: AssessConfig) -> list[Column]:
    """The summarised columns of a run: every chosen metric's scores, then the runner's."""
    return [c for c in [*config.columns(), *RUN_COLUMNS] if c.summarised]


def summarize(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Mean ± std per (model, method) of each summarised column, like the paper's table, with each column's
    direction (``<score>_better``: higher, lower or none) and unit."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"]), []).append(r)
    out = []
    for (model, method), rs in groups.items():
        row: dict[str, Any] = {"model": model, "method": method, "n_images": len(rs)}
        for c in columns:
            vals = np.array([float(r[c.name]) for r in rs])
            row[f"{c.name}_mean"], row[f"{c.name}_std"] = float(vals.mean()), float(vals.std())
            row[f"{c.name}_better"], row[f"{c.name}_unit"] = c.better, c.unit
        out.append(row)
    return out


def display_summary(summary: Sequence[dict[str, Any]], digits: int = 3) -> list[dict[str, str]]:
    """Summary rows for reading: one ``mean ± std`` cell per score, headed by its name and direction (↑ higher is
    better, ↓ lower is better)."""
    from depthscope.output.tables import fmt

    arrows = {"higher": " ↑", "lower": " ↓", "none": ""}
    out = []
    for r in summary:
        row = {"model": r["model"], "method": r["method"], "n": str(r["n_images"])}
        for key in r:
            if key.endswith("_mean"):
                s = key.removesuffix("_mean")
                # fmt: infidelity is in m^2 and ~1e-6 at the default noise std, so fixed decimals would print 0.000
                row[s + arrows[r.get(s + "_better", "none")]] = f"{fmt(r[key], digits)} ± {fmt(r[s + '_std'], digits)}"
        out.append(row)
    return out


def assess(
    models: Sequence[DepthModel | str],
    data: DepthDataset | str | os.PathLike,
    config: AssessConfig | None = None,
    out: str | os.PathLike = "out/assess",
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Assess attribution methods on models over a dataset, resumably.

    Args:
        models: :class:`DepthModel` s or model names.
        data: a dataset or a path :func:`depthscope.open_dataset` reads (layout from the model's protocol).
        config: methods, metrics and options (default :class:`AssessConfig`: saliency, IG, rollout, random; curves,
            both AF readings, Infidelity, Faithfulness Estimate).
        out: output directory: ``results.csv`` (append-only, one fsynced row per model, method and image),
            ``settings.json``, ``summary.csv`` and ``curves.png``.
        limit: only the first ``limit`` images.
        device: where to load models given by name.
        progress: show a progress bar.

    Returns:
        The summary rows (mean, std, direction and unit of each score per model and method).

    Example:
        >>> import tempfile, depthscope as ds
        >>> from depthscope.data import find_data
        >>> cfg = ds.AssessConfig(methods=("saliency", "random"), metrics=("curves",))
        >>> rows = ds.assess(["meter-xxs-nyu"], find_data(), cfg, tempfile.mkdtemp(), limit=1)
        >>> [(r["method"], r["n_images"], r["af_perturbation_better"]) for r in rows]
        [('saliency', 1, 'higher'), ('random', 1, 'higher')]
    """
    config = config or AssessConfig()
    check_limit(limit)
    out = Path(out)
    with RunLock(out):  # two runs never append to one results.csv
        return _assess(models, data, config, out, limit, device, progress)


def _assess(
    models: Sequence[DepthModel | str],
    data: DepthDataset | str | os.PathLike,
    config: AssessConfig,
    out: Path,
    limit: int | None,
    device: str,
    progress: bool,
) -> list[dict[str, Any]]:
    settings = config.settings()
    chunks, weights = resume_settings(out / "settings.json", settings)
    columns = [*KEY_COLUMNS, *(c.name for c in config.columns()), *(c.name for c in RUN_COLUMNS)]
    sink = CsvAppender(out / "results.csv", columns)
    done = {(r["model"], r["method"], r["image"]) for r in sink.rows}
    methods = config.methods
    for model in models:
        model = load_model(model, device=device) if isinstance(model, str) else model
        ds = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
        n = len(ds) if limit is None else min(limit, len(ds))
        used = model.info.weights or "random"  # recorded: rows of random weights never pass for a trained model's
        if (weights.setdefault(model.name, used) == "random") != (used == "random"):
            raise InputError(f"{out} holds rows of {model.name} with weights {weights[model.name]}, not {used}; "
                             "use another --out")  # fmt: skip
        weights[model.name] = used
        if used == "random":
            warn(f"{model.name} has random weights (no checkpoint was loaded): its maps explain no trained model")
        if model.name not in chunks and n > 0:
            # Chosen by measurement once, then kept in settings.json: a resumed run batches exactly as the first
            # did, so its scores are the same to the last bit (batch composition changes float rounding).
            x0 = ds[0].image[None].to(device)
            chunks[model.name] = tune_chunk_size(model, x0, CHUNK_PROBE, backward=False)
        write_json(out / "settings.json", {**settings, "forward_chunk_size": chunks, "model_weights": weights})
        bar = tqdm(total=n * len(methods), desc=f"assess {model.name}", disable=not progress)
        for i in range(n):
            # Datasets know an image's key before decoding it: finished images are not read again.
            known = ds.key(i)
            if all((model.name, m, known) in done for m in methods):
                bar.update(len(methods))
                continue
            s = ds[i]
            todo = [m for m in methods if (model.name, m, s.name) not in done]
            if todo:
                image_config = config if len(todo) == len(methods) else _only(config, todo)
                gt = None if s.depth is None else s.depth.to(device)
                finished = assess_image(
                    model, s.image.to(device), image_config, gt, config.seed + i, chunks[model.name],
                    on_phase=lambda p, name=s.name, bar=bar: bar.set_postfix_str(f"{name}: {p}", refresh=True),
                )  # fmt: skip
                for method, scores in finished:  # one fsynced row per finished (model, method, image)
                    sink.append({"model": model.name, "method": method, "image": s.name, **scores})
                    bar.update()
            bar.update(len(methods) - len(todo))
        bar.close()
    summary = summarize(sink.rows, summary_columns(config))
    write_csv(out / "summary.csv", summary)
    if "curves" in config.metrics and sink.rows:
        curves: dict[str, dict[str, list[list[float]]]] = {}
        for r in sink.rows:
            key = r["method"] if len(models) == 1 else f"{r['model']}/{r['method']}"
            for o in ORDERS:
                curves.setdefault(key, {}).setdefault(o, []).append(json.loads(r[f"{o}_curve"]))
        af: dict[str, list[float]] = {}
        for r in sink.rows:
            af.setdefault(r["method"] if len(models) == 1 else f"{r['model']}/{r['method']}", []).append(
                float(r["af_perturbation"])
            )
        notes = {k: f"AF = {np.mean(v):.3f} ± {np.std(v):.3f}" for k, v in af.items()}
        curves_figure(curves, json.loads(sink.rows[0]["fractions"]), out / "curves.png", notes=notes)
    return summary


def _only(config: AssessConfig, methods: Sequence[str]) -> AssessConfig:
    return dataclasses.replace(config, methods=tuple(methods))
