"""Corrupted copies of a dataset generated on the fly (:mod:`depthscope.ops.corruptions`), scored as the RoboDepth
benchmark scores them: per corruption and severity the standard metrics and the depth estimation error
``DEE = (AbsRel - delta1 + 1) / 2``; per corruption the corruption error ``CE`` (the model's DEE summed over
severities over a reference model's) and the resilience rate ``RR`` (``sum_s (1 - DEE_s) / (S (1 - DEE_clean))``);
their means ``mCE`` and ``mRR``. And what no benchmark measures: how far each chosen method's map of the mean depth
moves, Spearman and top-10 % IoU of the map on the clean against the corrupted image."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthscope.config import changed_settings
from depthscope.data.datasets import DepthDataset, as_dataset, check_limit
from depthscope.errors import InputError
from depthscope.explain import explain
from depthscope.metrics.depth import evaluate_depth
from depthscope.metrics.evaluate import DEFAULT_ALIGNMENT, depth_caps, resolve_crop
from depthscope.models import DepthModel, load_model
from depthscope.ops.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from depthscope.ops.stats import spearman, top_fraction_iou
from depthscope.output.figures import corruptions_figure
from depthscope.output.files import CsvAppender, RunLock, claim_folder, write_csv, write_json

DEFAULT_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "jpeg_compression")
CLEAN = "clean"


def dee(abs_rel: float, delta1: float) -> float:
    """RoboDepth's depth estimation error: ``(AbsRel - delta1 + 1) / 2`` (0 perfect, 1 worst).

    Example:
        >>> round(dee(0.1, 0.9), 6)
        0.1
    """
    return (abs_rel - delta1 + 1) / 2


@dataclass
class RobustnessResult:
    """``rows``: per corruption and severity the mean metrics and map drift; ``per_corruption``: CE and RR;
    ``mce`` and ``mrr`` (fractions: 1.0 = 100 %)."""

    rows: list[dict[str, Any]]
    per_corruption: list[dict[str, Any]]
    mce: float
    mrr: float


def robustness(
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    corruptions: Sequence[str] = DEFAULT_CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
    methods: Sequence[str] = ("saliency",),
    reference: DepthModel | str | None = None,
    out: str | os.PathLike = "out/robustness",
    limit: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    force_new: bool = False,
    engine: Any = None,
) -> RobustnessResult:
    """Accuracy and explanation drift of ``model`` under corruptions of ``data``.

    Args:
        model: a :class:`DepthModel` or a model name.
        data: a dataset or a path.
        corruptions: registered corruption names (:data:`~depthscope.ops.corruptions.CORRUPTIONS`).
        severities: of 1-5.
        methods: attribution methods whose map (of the mean depth) is compared on clean and corrupted images.
        reference: the model mCE is relative to (default: ``model`` itself, so mCE is 100 % by definition).
        out: ``results.csv`` (one fsynced row per image, corruption and severity; resumable), ``settings.json``,
            ``summary.csv``, ``corruptions.csv`` (CE, RR), ``robustness.json`` (mCE, mRR, settings) and
            ``corruptions.png``.
        limit: only the first ``limit`` images.
        seed: image ``i`` is corrupted with seed ``seed + i`` (the same corrupted images every run).
        device: where to load models given by name.
        progress: a progress bar.
        force_new: move an earlier run in ``out`` aside.
        engine: None: this process; a :class:`depthscope.engine.RayEngine`: Ray workers corrupt, predict and
            explain whole images (models by name, data by path), this process alone writes ``results.csv``.

    Returns:
        A :class:`RobustnessResult`.

    Example:
        >>> import tempfile
        >>> from depthscope.data import find_data
        >>> res = robustness("meter-xxs-nyu", find_data(), ["gaussian_noise"], [1], [], out=tempfile.mkdtemp(), limit=1)
        >>> [r["corruption"] for r in res.rows], round(res.mce, 3)
        (['clean', 'gaussian_noise'], 1.0)
    """
    check_limit(limit)
    for c in corruptions:
        CORRUPTIONS.get(c)
    bad = [s for s in severities if s not in SEVERITIES]
    if bad or not severities or not corruptions:
        raise InputError(f"--severities take 1-5 and --corruptions at least one name, got {list(severities)}")
    model_arg, reference_arg = model, reference
    if engine is not None and (not isinstance(model, str) or not isinstance(reference, str | None)
                               or isinstance(data, DepthDataset)):  # fmt: skip
        raise InputError("--engine ray runs models given by name on data given by path (each worker loads its own)")
    model = load_model(model, device=device) if isinstance(model, str) else model
    ref = (
        None
        if reference is None
        else (load_model(reference, device=device) if isinstance(reference, str) else reference)
    )
    ds = as_dataset(data, model.info.eval.dataset)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise InputError("the dataset is empty")
    lo, hi = depth_caps(model, ds)
    scoring = {"min_depth": lo, "max_depth": hi, "crop": resolve_crop(None, ds.name, model),
               "align": DEFAULT_ALIGNMENT[model.preprocessing.output], "output": model.preprocessing.output}  # fmt: skip
    runs = [(CLEAN, 0)] + [(c, s) for c in corruptions for s in severities]
    drift = [f"{m}_{k}" for m in methods for k in ("spearman", "iou")]
    columns = ["image", "corruption", "severity", "rmse", "abs_rel", "delta1", "dee", "ref_dee", *drift]
    out = Path(out)
    with RunLock(out):
        claim_folder(out, ds.identity(), force_new)
        settings = {"model": model.name, "reference": ref.name if ref else model.name, "corruptions": list(corruptions),
                    "severities": list(severities), "methods": list(methods), "seed": seed, **scoring}  # fmt: skip
        _check_settings(out / "settings.json", settings)
        sink = CsvAppender(out / "results.csv", columns)
        done = {(r["image"], r["corruption"], r["severity"]) for r in sink.rows}
        bar = tqdm(total=n * len(runs), desc=f"robustness {model.name}", disable=not progress)
        jobs = [i for i in range(n) if i == 0 or any((ds.key(i), c, str(s)) not in done for c, s in runs)]
        bar.update(n * len(runs) - len(jobs) * len(runs))
        job = {"runs": runs, "methods": list(methods), "seed": seed, "scoring": scoring}
        figure: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        if engine is None:
            results: Any = ((i, *robustness_image(model, ref, ds[i], i, job)) for i in jobs)
        else:
            results = engine.robustness(model_arg, reference_arg, data, device, jobs, job,
                                        lambda t: bar.set_postfix_str(t, refresh=True))  # fmt: skip
        try:
            for _i, rows, panels in results:
                figure = panels or figure
                for row in rows:
                    if (row["image"], row["corruption"], str(row["severity"])) not in done:
                        sink.append(row)
                bar.update(len(runs))
        finally:
            if engine is not None:
                results.close()
        bar.close()
        if figure:
            corruptions_figure(figure, out / "corruptions.png", f"{model.name}, {ds.name} image 0, highest severity")
        res = summarise_robustness(sink.rows, drift)
        write_csv(out / "summary.csv", res.rows)
        write_csv(out / "corruptions.csv", res.per_corruption)
        write_json(out / "robustness.json", {**settings, "mce": res.mce, "mrr": res.mrr, "images": n})
        if progress:
            print(f"mCE {res.mce:.1%} (reference {settings['reference']}), mRR {res.mrr:.1%}", file=sys.stderr)
        return res


def robustness_image(
    model: DepthModel, ref: DepthModel | None, sample: Any, i: int, job: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[tuple[str, torch.Tensor, torch.Tensor]]]:
    """One image's rows (every corruption and severity of ``job["runs"]``, the clean image first) and, for image
    0, the figure's panels (the clean image and each corruption at its highest severity)."""
    methods, seed, scoring = job["methods"], job["seed"] + i, job["scoring"]
    x = sample.image.to(model.device)
    clean = {m: a.magnitude[0] for m, a in explain(model, x, methods, "mean", seed=seed).items()} if methods else {}
    top = max(s for _, s in job["runs"])
    rows, panels = [], []
    for c, s in job["runs"]:
        xc = x if c == CLEAN else corrupt(x.cpu(), c, s, seed).to(x.device)
        with torch.no_grad():
            pred = model(xc[None])[0, 0].cpu()
        if i == 0 and (c == CLEAN or s == top):
            panels.append((CLEAN if c == CLEAN else f"{c} {s}", xc.cpu(), pred))
        row = _scores(pred, sample.depth, scoring)
        row["ref_dee"] = ""
        if ref is not None:
            with torch.no_grad():
                row["ref_dee"] = _scores(ref(xc[None].to(ref.device))[0, 0].cpu(), sample.depth, scoring)["dee"]
        if methods:
            maps = explain(model, xc, methods, "mean", seed=seed)
            for m in methods:
                row[f"{m}_spearman"] = spearman(clean[m], maps[m].magnitude[0])
                row[f"{m}_iou"] = top_fraction_iou(clean[m], maps[m].magnitude[0], 0.1)
        rows.append({"image": sample.name, "corruption": c, "severity": s, **row})
    return rows, panels


def _check_settings(path: Path, settings: dict[str, Any]) -> None:
    """A rerun with other settings is refused (it would mix incomparable rows)."""
    import json

    if path.is_file():
        changed = changed_settings(json.loads(path.read_text()), settings)
        if changed:
            raise InputError(f"{path.parent} holds a run with other settings ({', '.join(changed)}); use another "
                             "--out or --force-new")  # fmt: skip
    else:
        write_json(path, settings)


def _scores(pred: torch.Tensor, gt: torch.Tensor | None, s: dict[str, Any]) -> dict[str, Any]:
    if gt is None:
        raise InputError("robustness scores accuracy: every image needs ground-truth depth")
    m = evaluate_depth(pred, gt, s["min_depth"], s["max_depth"], s["crop"], align=s["align"], output=s["output"])
    return {"rmse": m["rmse"], "abs_rel": m["abs_rel"], "delta1": m["delta1"], "dee": dee(m["abs_rel"], m["delta1"])}


def summarise_robustness(rows: Sequence[dict[str, Any]], drift: Sequence[str] = ()) -> RobustnessResult:
    """Means over images per corruption and severity; CE and RR per corruption; mCE and mRR.

    CE uses the reference's DEE (``ref_dee``; when empty, the model is its own reference, CE = 1)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["corruption"], int(r["severity"])), []).append(r)
    table = []
    for (c, s), rs in groups.items():
        row: dict[str, Any] = {"corruption": c, "severity": s, "n_images": len(rs)}
        for k in ("rmse", "abs_rel", "delta1", "dee", *drift):
            row[k] = float(np.mean([float(r[k]) for r in rs]))
        refs = [float(r["ref_dee"]) for r in rs if str(r.get("ref_dee", "")) != ""]
        row["ref_dee"] = float(np.mean(refs)) if len(refs) == len(rs) else row["dee"]
        table.append(row)
    clean = next((r for r in table if r["corruption"] == CLEAN), None)
    per = []
    for c in dict.fromkeys(r["corruption"] for r in table if r["corruption"] != CLEAN):
        rs = [r for r in table if r["corruption"] == c]
        ce = sum(r["dee"] for r in rs) / max(sum(r["ref_dee"] for r in rs), 1e-12)
        rr = sum(1 - r["dee"] for r in rs) / (len(rs) * (1 - clean["dee"])) if clean else float("nan")
        per.append({"corruption": c, "ce": ce, "rr": rr, "severities": len(rs)})
    mce = float(np.mean([p["ce"] for p in per])) if per else float("nan")
    mrr = float(np.mean([p["rr"] for p in per])) if per else float("nan")
    return RobustnessResult(table, per, mce, mrr)
