"""``compare``: does a changed model (int8, pruned, a new mixer, a student) still predict the same depth, look at
the same pixels, and explain itself as faithfully? Two models over one dataset, per image and method.

Both models are assessed exactly as ``assess`` does (same methods, metrics, options and seeds, so both are scored
on the same random draws); the maps that were scored are also compared with each other. Resumable like ``assess``:
one fsynced row per finished (method, image) in ``results.csv``; a rerun skips what is there.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from depthscope.assess.config import AssessConfig
from depthscope.assess.plan import CHUNK_PROBE
from depthscope.assess.registry import Column
from depthscope.assess.run import assess_image, resume_settings, summarize
from depthscope.compare.agreement import DEPTH_COLUMNS, MAP_COLUMNS, depth_agreement, map_agreement
from depthscope.data.datasets import DataSpec, DepthDataset, as_dataset, check_limit
from depthscope.errors import InputError, warn
from depthscope.explain.api import check_gradients
from depthscope.explain.attribution import Attribution
from depthscope.models import DepthModel, load_model, warn_if_untrained
from depthscope.ops.batching import tune_chunk_size
from depthscope.output.files import CsvAppender, RunLock, claim_folder, output_path, write_csv, write_json

DEFAULT_METHODS = ("saliency", "integrated_gradients", "attention_rollout")
DEFAULT_METRICS = ("curves", "af_depth_correlation", "infidelity")
KEY_COLUMNS = ("model", "reference", "method", "image")
ROLES = ("a", "b")


def default_config() -> AssessConfig:
    """What ``compare`` measures unless told: saliency, IG and rollout; both AF readings and Infidelity."""
    return AssessConfig(methods=DEFAULT_METHODS, metrics=DEFAULT_METRICS)


def score_columns(config: AssessConfig) -> list[Column]:
    """The assessment scores compared: each chosen metric's headline column (``af_perturbation`` of the curves,
    ``af_depth_correlation``, ``infidelity``, ``faithfulness_correlation``)."""
    heads = {m.headline or name for name, m in config.build_metrics().items()}
    return [c for c in config.columns() if c.name in heads]


def compare_columns(config: AssessConfig) -> list[Column]:
    """Every summarised column of a comparison: depth and map agreement, then per score its value under A, under
    B and the change B - A (no direction: whether a change is bad depends on its sign and the score)."""
    out = [*DEPTH_COLUMNS, *MAP_COLUMNS]
    for c in score_columns(config):
        out += [
            Column(f"{c.name}_a", c.higher_is_better, unit=c.unit, description=f"{c.name} of model A's map"),
            Column(f"{c.name}_b", c.higher_is_better, unit=c.unit, description=f"{c.name} of model B's map"),
            # a larger B - A of a higher-is-better score is better: a frontier over the change knows its direction
            Column(f"{c.name}_change", c.higher_is_better, unit=c.unit, description=f"{c.name} of B's map minus A's"),
        ]
    return out


def supported_methods(config: AssessConfig, models: Sequence[DepthModel]) -> AssessConfig:
    """``config`` without the methods some model cannot run (gradient methods on a model without gradients, such
    as int8), saying which were dropped; one error when none is left. What ``compare`` does with its default
    methods (methods a user names are never dropped: a gradient method on int8 is then an error).

    Example:
        >>> from depthscope.models import load_model
        >>> supported_methods(default_config(), [load_model("meter-xxs-nyu")]).methods
        ('saliency', 'integrated_gradients', 'attention_rollout')
    """
    from depthscope.explain import METHODS

    stuck = [m.name for m in models if not m.differentiable]
    if not stuck:
        return config
    keep = tuple(m for m in config.methods if not METHODS.get(m).needs_grad)
    dropped = [m for m in config.methods if m not in keep]
    if not keep:
        raise InputError(f"{', '.join(stuck)} has no gradients and every method asked for needs them; choose "
                         "--methods that do not (`depthscope list methods`: needs gradients = no)")  # fmt: skip
    if dropped:
        warn(f"{', '.join(stuck)} has no gradients (int8): comparing {', '.join(keep)} only, not {', '.join(dropped)}")
    return dataclasses.replace(config, methods=keep)


def check_comparable(a: DepthModel, b: DepthModel, config: AssessConfig) -> list[str]:
    """One error if ``a`` and ``b`` cannot be compared (outputs of different kinds, a gradient method on a model
    without gradients); otherwise the notes a reader of the results needs (different input sizes or protocols)."""
    if a.preprocessing.output != b.preprocessing.output:
        raise InputError(
            f"cannot compare {a.name} ({a.preprocessing.output}) with {b.name} ({b.preprocessing.output}): their "
            "outputs are in different units; compare models that predict the same quantity"
        )
    for m in (a, b):
        check_gradients(m, config.methods)
    notes = []
    sa, sb = tuple(a.preprocessing.input_size), tuple(b.preprocessing.input_size)
    if sa != sb:
        notes.append(
            f"{a.name} resizes images to {sa[0]}x{sa[1]}, {b.name} to {sb[0]}x{sb[1]}: both predict at the image's "
            "resolution, where depths and maps are compared (the network inputs are resampled differently)"
        )
    if a.info.eval.dataset != b.info.eval.dataset:
        notes.append(f"{a.name} is a {a.info.eval.dataset} model, {b.name} a {b.info.eval.dataset} one: the data "
                     f"is read with {a.name}'s protocol ({a.info.eval.dataset})")  # fmt: skip
    return notes


def compare(
    model_a: DepthModel | str,
    model_b: DepthModel | str,
    data: DepthDataset | DataSpec | str | os.PathLike,
    config: AssessConfig | None = None,
    out: str | os.PathLike = "out/compare",
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    figures: int = 1,
    force_new: bool = False,
) -> list[dict[str, Any]]:
    """Compare model B with reference model A on a dataset: depth agreement, attribution agreement and the change
    of each assessment score, per image and method, resumably.

    Args:
        model_a: the reference (e.g. the fp32 model): a :class:`DepthModel` or a name / checkpoint.
        model_b: the changed model (e.g. ``runs/opt/int8/model.safetensors``).
        data: a dataset or a path, read with model A's protocol.
        config: methods, metrics and options, as for ``assess`` (default :func:`default_config`).
        out: output directory: ``results.csv`` (one fsynced row per method and image), ``settings.json``,
            ``summary.csv`` (mean, std, direction and unit per method) and ``figures/IMAGE.png`` (the maps of A
            and B side by side with their difference) for the first ``figures`` images.
        limit: only the first ``limit`` images.
        device: where models given by name are loaded.
        progress: show a progress bar.
        figures: how many images get a figure.
        force_new: ``out`` holds an earlier run: move its files to ``out/previous-<time>/`` and start afresh
            (without it, a folder of other data is one clear error; ``out/dataset.json`` records the data).

    Returns:
        The summary rows: ``model`` (B), ``reference`` (A), ``method``, ``n_images`` and per column its mean,
        std, direction and unit.

    Example:
        >>> import tempfile, depthscope as ds
        >>> from depthscope.data import find_data
        >>> cfg = ds.AssessConfig(methods=("saliency",), metrics=("af_depth_correlation",))
        >>> rows = ds.compare("meter-xxs-nyu", "meter-xxs-nyu", find_data(), cfg, tempfile.mkdtemp(), limit=1)
        >>> r = rows[0]
        >>> r["method"], r["depth_rmse_mean"], round(r["spearman_mean"], 6), r["af_depth_correlation_change_mean"]
        ('saliency', 0.0, 1.0, 0.0)
    """
    chosen = config is not None
    config = config or default_config()
    check_limit(limit)
    if figures < 0:
        raise InputError(f"--figures must be >= 0, got {figures}")
    models = [load_model(m, device=device) if isinstance(m, str) else m for m in (model_a, model_b)]
    if not chosen:
        config = supported_methods(config, models)
    notes = check_comparable(*models, config)
    for note in notes:
        warn(note)
    for m in models:
        warn_if_untrained(m, "its maps explain no trained model")
    ds = as_dataset(data, models[0].info.eval.dataset)
    out = Path(out)
    with RunLock(out):  # two runs never append to one results.csv
        claim_folder(out, ds.identity(), force_new)
        return _compare(models, ds, config, out, limit, progress, figures, notes)


def _compare(
    models: list[DepthModel],
    ds: DepthDataset,
    config: AssessConfig,
    out: Path,
    limit: int | None,
    progress: bool,
    figures: int,
    notes: list[str],
) -> list[dict[str, Any]]:
    a, b = models
    settings = {"model_a": a.name, "model_b": b.name, **config.settings(), "notes": notes}
    chunks, weights = resume_settings(out / "settings.json", settings)
    for role, m in zip(ROLES, models, strict=True):
        if weights.setdefault(role, m.weights_record) != m.weights_record:
            raise InputError(f"{out} holds rows of {m.name} with weights {weights[role]}, not {m.weights_record}; "
                             "use another --out")  # fmt: skip
    columns, scores = compare_columns(config), score_columns(config)
    sink = CsvAppender(out / "results.csv", [*KEY_COLUMNS, *(c.name for c in columns)])
    done = {(r["method"], r["image"]) for r in sink.rows}
    n = len(ds) if limit is None else min(limit, len(ds))
    keys = [ds.key(i) for i in range(n)]
    todo = [i for i, k in enumerate(keys) if any((m, k) not in done for m in config.methods)]
    device = a.device
    if todo:
        x0 = ds[todo[0]].image[None].to(device)
        for role, m in zip(ROLES, models, strict=True):
            if role not in chunks:  # measured once, kept: a resumed run batches as the first did
                chunks[role] = tune_chunk_size(m, x0, CHUNK_PROBE, backward=False)
    write_json(out / "settings.json", {**settings, "forward_chunk_size": chunks, "model_weights": weights})
    bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=f"compare {b.name} with {a.name}",
               disable=not progress)  # fmt: skip
    status = functools.partial(bar.set_postfix_str, refresh=True)
    for i in todo:
        sample = ds[i]
        x = sample.image[None].to(device)
        gt = None if sample.depth is None else sample.depth.to(device)
        scored: list[tuple[dict[str, dict[str, Any]], dict[str, Attribution]]] = []
        for role, m in zip(ROLES, models, strict=True):
            maps: dict[str, Attribution] = {}
            rows = dict(assess_image(m, x, config, gt, config.seed + i, chunks[role],
                                     on_phase=lambda p, who=f"{sample.name}: {m.name}": status(f"{who}: {p}"),
                                     on_map=maps.__setitem__))  # fmt: skip
            scored.append((rows, maps))
        with torch.no_grad():
            da, db = a(x)[0, 0], b(x)[0, 0]
        depth, shared = depth_agreement(da, db), (da > 0) & (db > 0)
        (rows_a, maps_a), (rows_b, maps_b) = scored
        for method in config.methods:
            if (method, sample.name) in done:
                continue
            row: dict[str, Any] = {"model": b.name, "reference": a.name, "method": method, "image": sample.name}
            row |= depth | map_agreement(maps_a[method].magnitude[0], maps_b[method].magnitude[0], shared)
            for c in scores:
                va, vb = float(rows_a[method][c.name]), float(rows_b[method][c.name])
                row |= {f"{c.name}_a": va, f"{c.name}_b": vb, f"{c.name}_change": vb - va}
            sink.append(row)
            done.add((method, sample.name))
        if i < figures:
            from depthscope.output.figures import compare_figure

            compare_figure(sample.image, {k: v.magnitude[0] for k, v in maps_a.items()},
                           {k: v.magnitude[0] for k, v in maps_b.items()}, (a.name, b.name),
                           output_path(out, f"figures/{sample.name}.png"))  # fmt: skip
        bar.update()
    bar.close()
    summary = [{"reference": a.name, **r} for r in summarize(sink.rows, columns)]
    write_csv(out / "summary.csv", summary)
    if progress:
        print(f"compared {b.name} with {a.name} on {len(keys)} image(s)", file=sys.stderr)
    return summary


def display_compare(summary: Sequence[dict[str, Any]], digits: int = 3) -> list[dict[str, str]]:
    """Summary rows for reading: method, agreement (mean) and each score under A -> B."""
    from depthscope.output.tables import fmt

    out = []
    for r in summary:
        row = {"method": r["method"], "n": str(r["n_images"])}
        for key in ("depth_rmse", "depth_abs_rel", "spearman", "ssim", "top10_iou"):
            row[key] = fmt(r[f"{key}_mean"], digits)
        for key in r:
            if key.endswith("_change_mean"):
                s = key.removesuffix("_change_mean")
                row[f"{s} A -> B"] = f"{fmt(r[s + '_a_mean'], digits)} -> {fmt(r[s + '_b_mean'], digits)}"
        out.append(row)
    return out
