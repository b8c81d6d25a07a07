"""Dataset-level assessment (models x methods x images), resumable: one row per finished (model, method, image)
is appended to ``results.csv`` and fsynced; a rerun skips what is there, so an interrupted run loses nothing.
Columns, summary and settings all come from the chosen metrics (:mod:`depthscope.assess.registry`)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
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
from depthscope.assess.perturbation import ORDERS, model_region
from depthscope.assess.plan import CHUNK_PROBE, CostPlan, PhaseTimer, probe_config, scaled_plan
from depthscope.assess.registry import Column, ImageContext
from depthscope.config import changed_settings
from depthscope.data.datasets import DataSpec, DepthDataset, as_dataset, check_limit
from depthscope.errors import InputError, warn
from depthscope.explain import explain, target_model
from depthscope.explain.attribution import Attribution
from depthscope.models import DepthModel, load_model, warn_if_untrained
from depthscope.ops.batching import tune_chunk_size
from depthscope.output.figures import curves_figure
from depthscope.output.files import CsvAppender, RunLock, claim_folder, write_csv, write_json
from depthscope.output.tables import format_table
from depthscope.probe.run import frame_check

KEY_COLUMNS = ("model", "method", "image")
RUN_COLUMNS = (  # written by the runner
    Column("seconds_per_map", higher_is_better=False, summarised=False, unit="s"),
    Column(
        "completeness_error",
        higher_is_better=False,
        summarised=False,
        description="a path method's |sum of the map - (F(x) - F(baseline))| / |F(x) - F(baseline)| (Integrated "
        "Gradients' completeness; empty for the other methods)",
    ),  # fmt: skip
    Column("device", summarised=False),
)


def image_context(
    model: DepthModel,
    x: torch.Tensor,
    config: AssessConfig | None = None,
    gt: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int | str = "auto",
    map_transform: Callable[[Attribution, int], Attribution] | None = None,
    map_model: DepthModel | None = None,
) -> ImageContext:
    """What every metric sees of image ``x`` ``(1, 3, H, W)``: the model, its whole-map mean target, the predicted
    depth, the perturbation region of ``config``, and a map maker with ``config``'s method options, ``seed`` and
    ``map_transform`` (:class:`~depthscope.assess.registry.ImageContext`); ``map_model``, if given, is the model
    the maps explain instead of ``model`` (meta-evaluation: maps of a randomised model scored on the real one).

    Example:
        >>> from depthscope.models import load_model
        >>> ctx = image_context(load_model("meter-xxs-nyu"), torch.rand(1, 3, 96, 128))
        >>> tuple(ctx.depth.shape), tuple(ctx.remap("saliency").raw.shape)
        ((96, 128), (1, 3, 96, 128))
    """
    config = config or AssessConfig()
    with torch.no_grad():
        depth = model(x)[0, 0]
    region = model_region(config.perturb_region, model, *x.shape[-2:])

    def make_map(
        method: str, xi: torch.Tensor | None = None, m: DepthModel | None = None, target: Any = "mean"
    ) -> Attribution:
        opts = config.method_options.get(method)
        a = explain(m or map_model or model, x if xi is None else xi, method, target, {method: opts} if opts else None,
                    seed=seed)[method]  # fmt: skip
        return a if map_transform is None else map_transform(a, seed)

    return ImageContext(model, target_model(model, x, "mean"), x, depth, gt, seed, chunk_size,
                        None if region is None else region.to(x.device), make_map)  # fmt: skip


def assess_image(
    model: DepthModel,
    image: torch.Tensor,
    config: AssessConfig | None = None,
    gt: torch.Tensor | None = None,
    seed: int = 0,
    chunk_size: int | str = "auto",
    on_phase: Callable[[str], None] | None = None,
    on_map: Callable[[str, Attribution], None] | None = None,
    map_transform: Callable[[Attribution, int], Attribution] | None = None,
    metric_seconds: dict[str, float] | None = None,
    map_model: DepthModel | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Scores of every method's map (whole-map mean target) on one image, method by method.

    Each metric's ``prepare`` runs once for the image (its random draws and the model's responses to them do not
    depend on the map), so every method is scored on the same draws; an adaptive (``joint``) metric draws once all
    maps are made, until their scores are resolved.

    Args:
        model: the model.
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1].
        config: methods, metrics and their options (default :class:`AssessConfig`).
        gt: ground-truth depth ``(H, W)`` in metres, if any.
        seed: this image's seed (a dataset run uses ``config.seed + index``).
        chunk_size: perturbed inputs per forward (``"auto"``: measured).
        on_phase: called with the name of each phase as it starts (``draws: METRIC``, ``map: METHOD``,
            ``scores: METHOD``: the phases of the cost plan), so a caller can say where an image's time goes.
        on_map: called with ``(method, attribution)`` as each map is made (``depthscope.compare`` keeps them to
            measure two models' agreement on the very maps that were scored).
        map_transform: ``(attribution, seed) -> attribution`` applied to every map made, the scored ones and those
            a metric makes anew (meta-evaluation's disruptions: shuffled or inverted maps).
        map_model: the model the maps explain, if not ``model`` (see :func:`image_context`).
        metric_seconds: if given, each metric's wall time (its draws, the maps it makes, its scores) is added to
            it under the metric's name.

    Yields:
        ``(method, {column: value})`` as soon as that method is done, so a caller can save it before the next.
    """
    config = config or AssessConfig()
    x = image.unsqueeze(0) if image.dim() == 3 else image
    ctx = image_context(model, x, config, gt, seed, chunk_size, map_transform, map_model)
    metrics = config.build_metrics()
    phase = on_phase or (lambda name: None)
    clock = _MetricClock(metric_seconds)
    prepared = {}
    for name, m in metrics.items():
        if not m.joint:
            phase(f"draws: {name}")
            with clock(name):
                prepared[name] = m.prepare(ctx)
    attrs, seconds = {}, {}
    for method in config.methods:
        phase(f"map: {method}")
        t0 = time.perf_counter()
        attrs[method] = ctx.remap(method)
        seconds[method] = time.perf_counter() - t0
        if on_map is not None:
            on_map(method, attrs[method])
    joint: dict[str, dict[str, dict[str, Any]]] = {}
    for name, m in metrics.items():
        if m.joint:  # adaptive draws: every map of the image decides when they stop
            phase(f"draws: {name}")
            with clock(name):
                joint[name] = m.score_maps(ctx, attrs)
    for method, attr in attrs.items():
        phase(f"scores: {method}")
        errors = attr.info.get("completeness_error")
        row: dict[str, Any] = {"seconds_per_map": seconds[method],
                               "completeness_error": errors[0] if errors else ""}  # fmt: skip
        for name, m in metrics.items():
            with clock(name):
                row |= joint[name][method] if name in joint else m.score(prepared[name], attr)
        yield method, row


class _MetricClock:
    """``with clock(name):`` adds the block's wall time to ``seconds[name]`` (nothing when ``seconds`` is None)."""

    def __init__(self, seconds: dict[str, float] | None) -> None:
        self.seconds = seconds

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.seconds is not None:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


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
    the same phases (:func:`~depthscope.assess.plan.probe_config`: curves at 3 fractions, 16 draws for a fixed
    count; an adaptive metric draws as in the run) on the first image on this device (once to warm up, once
    timed), scaled by each phase's passes, so input construction at the image's resolution is counted along with
    the model. An adaptive metric is planned at the draws it needed on that image.

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
    ds = as_dataset(data, model.info.eval.dataset)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise InputError("the dataset is empty: nothing to plan")
    x = ds[0].image[None].to(model.device)
    chunk = chunk_size or tune_chunk_size(model, x, CHUNK_PROBE, backward=False)
    for _ in assess_image(model, x, probe_config(config, warmup=True), None, config.seed, chunk):
        pass  # warm-up: allocator, caches, lazy initialisation
    timer, rows = PhaseTimer(), []
    for _, row in assess_image(model, x, probe_config(config), None, config.seed, chunk, on_phase=timer):
        timer.stop()
        rows.append(row)
    timer.stop()
    return scaled_plan(model, config, x, n if images is None else images, timer.totals, rows[0])


def resume_settings(path: Path, settings: dict[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """The forward chunk sizes and model weights of an earlier run in ``path`` (empty for a new run); a rerun with
    other settings is refused, naming them, rather than mixing incomparable rows in one results.csv."""
    if not path.exists():
        write_json(path, {**settings, "forward_chunk_size": {}, "model_weights": {}})
        return {}, {}
    before = json.loads(path.read_text())
    chunks = before.pop("forward_chunk_size", {})
    weights = before.pop("model_weights", {})
    changed = changed_settings(before, settings)
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
    data: DepthDataset | DataSpec | str | os.PathLike,
    config: AssessConfig | None = None,
    out: str | os.PathLike = "out/assess",
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    weights: str | None = None,
    engine: Any = None,
    chunk_size: int | None = None,
    force_new: bool = False,
) -> list[dict[str, Any]]:
    """Assess attribution methods on models over a dataset, resumably.

    Args:
        models: :class:`DepthModel` s or model names.
        data: a dataset or a path :func:`depthscope.open_dataset` reads (layout from the model's protocol).
        config: methods, metrics and options (default :class:`AssessConfig`: saliency, IG, rollout, random; curves,
            both AF readings, Infidelity, Faithfulness Correlation).
        out: output directory: ``results.csv`` (append-only, one fsynced row per model, method and image),
            ``settings.json``, ``summary.csv`` and ``curves.png``.
        limit: only the first ``limit`` images.
        device: where to load models given by name.
        progress: show a progress bar.
        weights: an explicit checkpoint for the models given by name.
        engine: where the images run: None, this process; a :class:`depthscope.engine.RayEngine`, Ray workers
            (models by name, data as a path or :class:`~depthscope.data.DataSpec`). Either way this process alone
            appends ``results.csv``, so resume and the settings checks are the same.
        chunk_size: perturbed inputs per forward (default: the fastest, measured once per model and kept in
            ``settings.json``); fixing it makes runs on different machines or engines batch alike.
        force_new: ``out`` holds an earlier run (of this or other data): move its files to
            ``out/previous-<time>/`` and start afresh. Without it, a folder of other data is one clear error
            (``out/dataset.json`` records the data's root and a fingerprint of its files).

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
    if chunk_size is not None and chunk_size < 1:
        raise InputError(f"--chunk-size must be >= 1, got {chunk_size}")
    out = Path(out)
    with RunLock(out):  # two runs never append to one results.csv
        return _assess(models, data, config, out, limit, device, progress, weights, engine, chunk_size, force_new)


class LocalRunner:
    """One model's assessment in this process. The engine interface ``_assess`` drives (``depthscope.engine.ray``
    implements it with Ray workers): ``name``, ``weights_record``, ``keys``, ``tune``, ``plan``, ``run``,
    ``timer`` (phase seconds of the images run) and ``close``.

    Args:
        model: a :class:`DepthModel` or a name :func:`~depthscope.models.load_model` takes.
        data: a dataset, a :class:`~depthscope.data.DataSpec` or a path.
        device: where to load a model given by name.
        weights: an explicit checkpoint for a model given by name.
    """

    def __init__(self, model: DepthModel | str, data: Any, device: str = "cpu", weights: str | None = None) -> None:
        self.model = load_model(model, weights=weights, device=device) if isinstance(model, str) else model
        self.ds = as_dataset(data, self.model.info.eval.dataset)
        self.name, self.weights_record = self.model.name, self.model.weights_record
        self.device = str(self.model.device)
        self.timer = PhaseTimer()
        warn_if_untrained(self.model, "its maps explain no trained model")

    @property
    def identity(self) -> dict[str, Any]:
        """The data's identity (:meth:`~depthscope.data.DepthDataset.identity`), recorded in the run folder."""
        return self.ds.identity()

    def keys(self, limit: int | None) -> list[str]:
        """The keys of the first ``limit`` images (all when None), known before any image is decoded."""
        n = len(self.ds) if limit is None else min(limit, len(self.ds))
        return [self.ds.key(i) for i in range(n)]

    def tune(self) -> int:
        """The fastest forward chunk size for this model on the first image."""
        return tune_chunk_size(self.model, self.ds[0].image[None].to(self.device), CHUNK_PROBE, backward=False)

    def plan(self, config: AssessConfig, limit: int | None, images: int, chunk: int) -> CostPlan:
        return plan(config, self.model, self.ds, limit, self.device, images, chunk)

    def run(
        self, jobs: Sequence[tuple[int, AssessConfig, bool]], seed: int, chunk: int, status: Callable[[str], None]
    ) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(image key, method, row)`` of each ``(image index, config, whole)`` job (``whole``: all methods,
        timed for the plan), one method at a time as it is done; ``status`` is told where the work is."""
        for i, image_config, whole in jobs:
            s = self.ds[i]
            gt = None if s.depth is None else s.depth.to(self.device)

            def on_phase(p: str, name: str = s.name) -> None:
                self.timer(p)
                status(f"{name}: {p}")

            x = s.image.to(self.device)
            for method, row in assess_image(self.model, x, image_config, gt, seed + i, chunk, on_phase):
                self.timer.stop()  # writing the row is not part of a phase
                yield s.name, method, {**row, "device": self.device}
            self.timer.images += whole

    def close(self) -> None:
        pass


def _assess(
    models: Sequence[DepthModel | str],
    data: Any,
    config: AssessConfig,
    out: Path,
    limit: int | None,
    device: str,
    progress: bool,
    weights: str | None,
    engine: Any,
    chunk_size: int | None,
    force_new: bool = False,
) -> list[dict[str, Any]]:
    def runner_of(model: DepthModel | str) -> Any:
        return (
            engine.runner(model, data, device, weights)
            if engine is not None
            else LocalRunner(model, data, device, weights)
        )

    first = runner_of(models[0])  # the data it opens is what the folder records
    settings = config.settings()
    columns = [*KEY_COLUMNS, *(c.name for c in config.columns()), *(c.name for c in RUN_COLUMNS)]
    try:  # a refused folder closes the runner (Ray workers) before the error leaves
        claim_folder(out, first.identity, force_new)
        chunks, recorded = resume_settings(out / "settings.json", settings)
        sink = CsvAppender(out / "results.csv", columns)
    except BaseException:
        first.close()
        raise
    shortcuts: list[str] = []
    done = {(r["model"], r["method"], r["image"]) for r in sink.rows}
    methods = config.methods
    # An adaptive metric's draws stop when all of an image's maps are resolved: an unfinished image is then
    # computed whole (its rows equal a clean run's); otherwise only its missing methods run.
    joint = any(m.joint for m in config.build_metrics().values())
    plans: dict[str, Any] = {}
    for k, model in enumerate(models):
        runner = first if k == 0 else runner_of(model)
        try:
            keys = runner.keys(limit)
            used = runner.weights_record  # recorded: rows of random weights never pass for a trained model's
            if (recorded.setdefault(runner.name, used) == "random") != (used == "random"):
                raise InputError(f"{out} holds rows of {runner.name} with weights {recorded[runner.name]}, not "
                                 f"{used}; use another --out")  # fmt: skip
            recorded[runner.name] = used
            if chunk_size is not None and chunks.setdefault(runner.name, chunk_size) != chunk_size:
                raise InputError(f"{out} holds rows of {runner.name} computed {chunks[runner.name]} inputs per forward, "
                                 f"not {chunk_size}; use the same --chunk-size or another --out")  # fmt: skip
            if runner.name not in chunks and keys:
                # Chosen by measurement once, then kept in settings.json: a resumed run batches exactly as the
                # first did, so its scores are the same to the last bit (batch composition changes float rounding).
                chunks[runner.name] = runner.tune()
            write_json(out / "settings.json", {**settings, "forward_chunk_size": chunks, "model_weights": recorded})
            jobs = []
            for i, key in enumerate(keys):
                todo = [m for m in methods if (runner.name, m, key) not in done]
                if todo:
                    whole = len(todo) == len(methods) or joint
                    jobs.append((i, config if whole else _only(config, todo), whole))
            if isinstance(runner, LocalRunner) and jobs:  # what the model reads, before its maps are scored
                found = frame_check(runner.model, runner.ds[0].image[None].to(runner.device))
                for line in found:
                    warn(line + " (depthscope probe measures every probe)")
                shortcuts += found
                write_json(out / "shortcuts.json", shortcuts)
            cost = runner.plan(config, limit, len(jobs), chunks[runner.name]) if jobs else None
            if cost is not None and progress:
                print(f"plan: {cost.summary()}", file=sys.stderr)
            bar = tqdm(total=len(keys) * len(methods), desc=f"assess {runner.name}", disable=not progress)
            bar.update(len(keys) * len(methods) - sum(len(c.methods) for _, c, _ in jobs))
            t0 = time.perf_counter()
            status = functools.partial(bar.set_postfix_str, refresh=True)
            for key, method, row in runner.run(jobs, config.seed, chunks[runner.name], status):
                if (runner.name, method, key) not in done:  # one fsynced row per finished (model, method, image)
                    sink.append({"model": runner.name, "method": method, "image": key, **row})
                    done.add((runner.name, method, key))
                    bar.update()
            bar.close()
            wall = time.perf_counter() - t0
        finally:
            runner.close()
        if cost is not None and runner.timer.images:
            measured = runner.timer.per_image()
            plans[runner.name] = {**cost.to_dict(), "measured_per_image_s": measured,
                                  "images_measured": runner.timer.images, "measured_wall_s": wall}  # fmt: skip
            write_json(out / "plan.json", plans)
            if progress:
                print(f"planned vs measured per image ({runner.timer.images} image(s)):", file=sys.stderr)
                print(format_table(cost.rows(measured), digits=3), file=sys.stderr)
                print(f"wall time: planned {cost.seconds:.1f} s, measured {wall:.1f} s", file=sys.stderr)
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
