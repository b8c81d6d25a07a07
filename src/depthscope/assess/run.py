"""Dataset-level assessment (models x methods x images), resumable: one row per finished (model, method, image)
is appended to ``results.csv`` and fsynced; a rerun skips what is there, so an interrupted run loses nothing.
Columns, summary and settings all come from the chosen metrics (:mod:`depthscope.assess.registry`)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthscope.assess.config import AssessConfig
from depthscope.assess.perturbation import ORDERS
from depthscope.assess.plan import CHUNK_PROBE, CostPlan, PhaseTimer, probe_config, scaled_plan
from depthscope.assess.registry import Column, ImageContext
from depthscope.config import flatten
from depthscope.data.datasets import DepthDataset, check_limit, open_dataset
from depthscope.errors import InputError
from depthscope.explain import explain, target_model
from depthscope.models import DepthModel, load_model, warn_if_untrained
from depthscope.ops.batching import tune_chunk_size
from depthscope.output.figures import curves_figure
from depthscope.output.files import CsvAppender, RunLock, write_csv, write_json
from depthscope.output.tables import format_table

KEY_COLUMNS = ("model", "method", "image")
RUN_COLUMNS = (Column("seconds_per_map", higher_is_better=False, summarised=False, unit="s"),)  # by the runner


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
        on_phase: called with the name of each phase as it starts (``draws: METRIC``, ``map: METHOD``,
            ``scores: METHOD``: the phases of the cost plan), so a caller can say where an image's time goes.

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
        phase(f"draws: {name}")
        prepared[name] = m.prepare(ctx)
    for method in config.methods:
        phase(f"map: {method}")
        t0 = time.perf_counter()
        opts = config.method_options.get(method)
        attr = explain(model, x, method, "mean", {method: opts} if opts else None, seed=seed)[method]
        row: dict[str, Any] = {"seconds_per_map": time.perf_counter() - t0}
        phase(f"scores: {method}")
        for name, m in metrics.items():
            row |= m.score(prepared[name], attr)
        yield method, row


def plan(
    config: AssessConfig,
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    limit: int | None = None,
    device: str = "cpu",
    images: int | None = None,
    chunk_size: int | None = None,
) -> CostPlan:
    """The cost plan of assessing ``config`` on ``model`` over ``data``, before any of it runs.

    Passes per phase come from each method's and metric's declared cost; seconds from running a cheaper probe of
    the same phases (:func:`~depthscope.assess.plan.probe_config`: 16 draws, curves at 3 fractions) on the first
    image on this device (once to warm up, once timed), scaled by each phase's passes, so input construction at
    the image's resolution is counted along with the model.

    Args:
        config: the assessment's settings.
        model: a :class:`DepthModel` or a model name.
        data: a dataset or a path :func:`depthscope.open_dataset` reads.
        limit: only the first ``limit`` images.
        device: where to load ``model`` when it is a name.
        images: how many images the run will compute (default: all within ``limit``).
        chunk_size: perturbed inputs per forward (default: tuned as ``assess`` tunes it).

    Returns:
        A :class:`~depthscope.assess.plan.CostPlan`: ``rows()`` the table, ``summary()`` one line, ``seconds`` the
        projected wall time.

    Example:
        >>> from depthscope.data import find_data
        >>> cfg = AssessConfig(methods=("saliency", "random"), metrics=("curves",))
        >>> p = plan(cfg, "meter-xxs-nyu", find_data(), limit=2)
        >>> [(r["phase"], r["forwards"], r["backwards"]) for r in p.rows()]
        [('map: saliency', 1, 1), ('scores: saliency', 31, 0), ('map: random', 0, 0), ('scores: random', 31, 0), ('total per image', 63, 1)]
    """
    check_limit(limit)
    model = load_model(model, device=device) if isinstance(model, str) else model
    ds = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise InputError("the dataset is empty: nothing to plan")
    x = ds[0].image[None].to(next(model.parameters()).device)
    chunk = chunk_size or tune_chunk_size(model, x, CHUNK_PROBE, backward=False)
    probe = probe_config(config)
    for _ in assess_image(model, x, probe, None, config.seed, chunk):  # warm-up: chunk tuning, allocator, caches
        pass
    timer = PhaseTimer()
    for _ in assess_image(model, x, probe, None, config.seed, chunk, on_phase=timer):
        timer.stop()
    timer.stop()
    return scaled_plan(model, config, x, n if images is None else images, timer.totals)


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
    plans: dict[str, Any] = {}
    for model in models:
        model = load_model(model, device=device) if isinstance(model, str) else model
        ds = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
        n = len(ds) if limit is None else min(limit, len(ds))
        used = model.weights_record  # recorded: rows of random weights never pass for a trained model's
        if (weights.setdefault(model.name, used) == "random") != (used == "random"):
            raise InputError(f"{out} holds rows of {model.name} with weights {weights[model.name]}, not {used}; "
                             "use another --out")  # fmt: skip
        weights[model.name] = used
        warn_if_untrained(model, "its maps explain no trained model")
        if model.name not in chunks and n > 0:
            # Chosen by measurement once, then kept in settings.json: a resumed run batches exactly as the first
            # did, so its scores are the same to the last bit (batch composition changes float rounding).
            x0 = ds[0].image[None].to(device)
            chunks[model.name] = tune_chunk_size(model, x0, CHUNK_PROBE, backward=False)
        write_json(out / "settings.json", {**settings, "forward_chunk_size": chunks, "model_weights": weights})
        todo_images = sum(1 for i in range(n) if not all((model.name, m, ds.key(i)) in done for m in methods))
        cost = plan(config, model, ds, limit, device, todo_images, chunks[model.name]) if todo_images else None
        if cost is not None and progress:
            print(f"plan: {cost.summary()}", file=sys.stderr)
        timer = PhaseTimer()
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

                def on_phase(p: str, name: str = s.name, bar: Any = bar, timer: PhaseTimer = timer) -> None:
                    timer(p)
                    bar.set_postfix_str(f"{name}: {p}", refresh=True)

                finished = assess_image(
                    model, s.image.to(device), image_config, gt, config.seed + i, chunks[model.name], on_phase
                )
                for method, scores in finished:  # one fsynced row per finished (model, method, image)
                    timer.stop()  # writing the row is not part of a phase
                    sink.append({"model": model.name, "method": method, "image": s.name, **scores})
                    bar.update()
                timer.images += len(todo) == len(methods)
            bar.update(len(methods) - len(todo))
        bar.close()
        if cost is not None and timer.images:
            measured = timer.per_image()
            plans[model.name] = {**cost.to_dict(), "measured_per_image_s": measured, "images_measured": timer.images}
            write_json(out / "plan.json", plans)
            if progress:
                print(f"planned vs measured per image ({timer.images} image(s)):", file=sys.stderr)
                print(format_table(cost.rows(measured), digits=3), file=sys.stderr)
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
