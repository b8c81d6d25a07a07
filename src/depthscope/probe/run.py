"""``probe``: how far controlled edits of the input move a model's predicted depth, per image and probe.

Before trusting a perturbation score, know what the model reads: METER-XXS-NYU ties its global depth to the white
frame NYU images carry, so pixels "irrelevant" to a map may be the frame, and perturbing them measures the frame.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import depthscope.probe.edits  # noqa: F401  (registers the built-in probes)
from depthscope.data.datasets import DepthDataset, check_limit, open_dataset
from depthscope.errors import InputError, warn
from depthscope.models import DepthModel, load_model
from depthscope.ops.batching import predict_chunks
from depthscope.output.files import DATA_RECORD, CsvAppender, RunLock, write_csv, write_json
from depthscope.probe.registry import PROBES, Probe

DEFAULT_THRESHOLD = 0.2  # a probe that moves the mean depth by more than 20 % is reported as a shortcut
COLUMNS = ("image", "probe", "kind", "mean_depth_m", "edited_mean_depth_m", "mean_depth_change", "depth_rmse_m")
BORDER_NOTE = "the model uses the image border; perturbation scores near the border measure that"


def resolve_probes(names: str | Sequence[str] | None) -> list[Probe]:
    """The probes named (a comma-separated string, a list, or None for all), each checked against the registry."""
    if names is None:
        return [PROBES.get(n) for n in PROBES.names()]
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not items:
        raise InputError("--probes names no probe; valid probes: " + ", ".join(PROBES.names()))
    return [PROBES.get(n) for n in dict.fromkeys(items)]


@torch.no_grad()
def probe_image(
    model: DepthModel, x: torch.Tensor, probes: Sequence[Probe], chunk_size: int | str = 4
) -> dict[str, dict[str, float]]:
    """Every probe's effect on one image ``x`` ``(1, 3, H, W)``: ``{probe: {mean_depth_m, edited_mean_depth_m,
    mean_depth_change, depth_rmse_m}}``. The change is relative, ``(edited - original) / original``, of the mean
    predicted depth over the pixels with a prediction; the RMSE (m) is between the two depth maps (after the
    probe's ``undo``). The edited images run as batches of ``chunk_size``.

    Example:
        >>> from depthscope.models import load_model
        >>> from depthscope.data import find_data, read_image
        >>> m, x = load_model("meter-xxs-nyu"), read_image(find_data() / "image_0.png")[None]
        >>> r = probe_image(m, x, [PROBES.get("frame8_blur")])["frame8_blur"]
        >>> round(r["mean_depth_m"], 2), r["mean_depth_change"] > 0.8
        (3.05, True)
    """
    ref = model(x)[0, 0]
    valid = ref > 0
    m0 = float(ref[valid].mean())
    edited = torch.cat([p.edit(x) for p in probes])  # (P, 3, H, W)
    depth = predict_chunks(model, len(probes), lambda s: edited[s], chunk_size)[:, 0]
    out = {}
    for p, d in zip(probes, depth, strict=True):
        d = p.undo(d) if p.undo is not None else d
        m1 = float(d[valid].mean())
        rmse = float(((d - ref)[valid] ** 2).mean().sqrt())
        out[p.name] = {"mean_depth_m": m0, "edited_mean_depth_m": m1, "mean_depth_change": (m1 - m0) / m0,
                       "depth_rmse_m": rmse}  # fmt: skip
    return out


@dataclass
class ProbeResult:
    """What :func:`probe` measured: per-image ``rows``, the ``summary`` per probe (mean, std and the per-image
    values of the relative mean-depth change and of the RMSE) and the shortcut ``warnings``."""

    model: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def summarize_probes(rows: Sequence[dict[str, Any]], probes: Sequence[Probe]) -> list[dict[str, Any]]:
    """One row per probe: ``n_images``, mean and std of ``mean_depth_change`` and ``depth_rmse_m``, their
    per-image values, the probe's kind and description."""
    out = []
    for p in probes:
        mine = [r for r in rows if r["probe"] == p.name]
        if not mine:
            continue
        change = np.array([float(r["mean_depth_change"]) for r in mine])
        rmse = np.array([float(r["depth_rmse_m"]) for r in mine])
        out.append({
            "probe": p.name, "kind": p.kind, "n_images": len(mine),
            "mean_depth_change_mean": float(change.mean()), "mean_depth_change_std": float(change.std()),
            "depth_rmse_m_mean": float(rmse.mean()), "depth_rmse_m_std": float(rmse.std()),
            "per_image_change": [round(float(v), 4) for v in change], "description": p.description,
        })  # fmt: skip
    return out


def display_probes(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows for reading (the CLI's table and the report's): probe, kind, n, the mean depth change in
    percent and the depth RMSE in metres as ``mean ± std``, and what the probe edits."""
    return [{"probe": r["probe"], "kind": r["kind"], "n": r["n_images"],
             "mean depth change (%)": f"{100 * r['mean_depth_change_mean']:+.1f} ± {100 * r['mean_depth_change_std']:.1f}",
             "depth RMSE (m)": f"{r['depth_rmse_m_mean']:.3f} ± {r['depth_rmse_m_std']:.3f}", "edit": r["description"]}
            for r in summary]  # fmt: skip


def shortcut_warnings(model: str, summary: Sequence[dict[str, Any]], threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """One line per kind of probe whose strongest probe moves the mean depth by more than ``threshold`` (relative),
    e.g. "meter-xxs-nyu: blurring the outer 8-px frame changes the mean depth by +90 %: the model uses the image
    border; perturbation scores near the border measure that"."""
    lines = []
    for kind in dict.fromkeys(r["kind"] for r in summary):
        worst = max((r for r in summary if r["kind"] == kind), key=lambda r: abs(r["mean_depth_change_mean"]))
        change = worst["mean_depth_change_mean"]
        if abs(change) > threshold:
            note = f": {BORDER_NOTE}" if kind == "frame" else ""
            lines.append(f"{model}: {worst['description']} changes the mean depth by {100 * change:+.0f} %"
                         f" (n = {worst['n_images']}){note}")  # fmt: skip
    return lines


FRAME_CHECK = ("frame8_blur", "frame8_replicate", "shift_interior_6px")  # 3 forwards: the frame, and a control


def frame_check(model: DepthModel, x: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """The shortcut warnings of the frame probes on one image ``x`` ``(1, 3, H, W)`` (what ``assess`` prints before
    scoring: a model that reads the frame makes every perturbation near the border a test of the frame)."""
    if model.preprocessing.output != "depth":
        return []
    probes = [PROBES.get(n) for n in FRAME_CHECK]
    effects = probe_image(model, x, probes)
    rows = [{"image": "", "probe": p.name, "kind": p.kind, **effects[p.name]} for p in probes]
    return shortcut_warnings(model.name, summarize_probes(rows, probes), threshold)


def probe(
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    probes: str | Sequence[str] | None = None,
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
) -> ProbeResult:
    """Run shortcut probes over a dataset: how much each controlled edit moves the predicted depth.

    Args:
        model: a :class:`DepthModel` or a model name.
        data: a dataset or a path :func:`depthscope.open_dataset` reads (the model's protocol).
        probes: probe names (comma-separated or a list; :data:`PROBES`), default all.
        limit: only the first ``limit`` images.
        out: output folder: ``per_image.csv`` (one row per image and probe, written as computed),
            ``summary.csv`` and ``probe.json`` (summary, warnings, settings).
        device: where to load ``model`` when it is a name.
        progress: a progress bar.
        threshold: relative change of the mean depth above which a probe is reported as a shortcut.

    Returns:
        A :class:`ProbeResult`; its warnings are also printed (``depthscope: warning:``).

    Example:
        >>> from depthscope.data import find_data
        >>> res = probe("meter-xxs-nyu", find_data(), "frame8_blur,shift_interior_6px", limit=2)
        >>> [(r["probe"], r["mean_depth_change_mean"] > 0.5) for r in res.summary]
        [('frame8_blur', True), ('shift_interior_6px', False)]
    """
    check_limit(limit)
    if not (isinstance(threshold, int | float) and 0 < threshold < math.inf):
        raise InputError(f"--threshold must be a number > 0 (a relative change), got {threshold}")
    chosen = resolve_probes(probes)
    model = load_model(model, device=device) if isinstance(model, str) else model
    model.eval()
    if model.preprocessing.output != "depth":
        raise InputError(f"probe compares metric depth; {model.name} predicts {model.preprocessing.output}")
    ds = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
    n = len(ds) if limit is None else min(limit, len(ds))
    result = ProbeResult(model.name)
    with RunLock(out) if out is not None else contextlib.nullcontext():
        sink = None
        if out is not None:  # a fresh run each time (seconds of work): the last run's files go first
            for stale in ("per_image.csv", "summary.csv", "probe.json"):
                (Path(out) / stale).unlink(missing_ok=True)
            write_json(Path(out) / DATA_RECORD, ds.identity())
            sink = CsvAppender(Path(out) / "per_image.csv", COLUMNS)
        for i in tqdm(range(n), desc=f"probe {model.name}", disable=not progress):
            sample = ds[i]
            effects = probe_image(model, sample.image[None].to(model.device), chosen)
            for p in chosen:
                row = {"image": sample.name, "probe": p.name, "kind": p.kind, **effects[p.name]}
                result.rows.append(row)
                if sink is not None:
                    sink.append(row)
    result.summary = summarize_probes(result.rows, chosen)
    result.warnings = shortcut_warnings(model.name, result.summary, threshold)
    for line in result.warnings:
        warn(line)
    if out is not None:
        write_csv(Path(out) / "summary.csv", [{k: v for k, v in r.items() if k != "per_image_change"}
                                              for r in result.summary])  # fmt: skip
        write_json(Path(out) / "probe.json", {"model": model.name, "weights": model.weights_record,
                                              "dataset": ds.name, "n_images": n, "threshold": threshold,
                                              "summary": result.summary, "warnings": result.warnings})  # fmt: skip
    return result
