"""``meta_evaluate``: which of the assessment scores to trust for a model. Every registered metric with a
direction is computed on the unperturbed images and again under each meta-evaluation test (:mod:`.perturbations`),
and read as MetaQuantus-style consistencies (:mod:`.consistency`) and Tomsett et al.'s reliability statistics
(:mod:`.reliability`). Scores are appended to ``scores.csv`` one fsynced row per (test, repeat, image, method), so
an interrupted run resumes where it stopped."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthscope.assess.config import AssessConfig
from depthscope.assess.registry import METRICS
from depthscope.assess.run import assess_image, resume_settings
from depthscope.data.datasets import DepthDataset, as_dataset, check_limit
from depthscope.errors import InputError, warn
from depthscope.meta.consistency import got_worse, order_kept, paired_p
from depthscope.meta.perturbations import TESTS, Perturbed
from depthscope.meta.reliability import cronbach_alpha, krippendorff_alpha
from depthscope.models import DepthModel, load_model
from depthscope.ops.batching import tune_chunk_size
from depthscope.ops.stats import spearman
from depthscope.output.files import CsvAppender, RunLock, claim_folder, write_csv, write_json
from depthscope.seeding import stream_seed

DEFAULT_META_METHODS = ("saliency", "attention_rollout", "random")
CONTROL_METHODS = ("random",)  # maps that ignore the model: a disruption cannot make them worse
UNPERTURBED = "none"
# Cheaper settings of the costliest metrics for meta-evaluation (each run is repeated 1 + tests x repeats times);
# any of them can be overridden with --option.
META_METRIC_OPTIONS: dict[str, dict[str, Any]] = {
    "sensitivity": {"n_samples": 4}, "local_lipschitz": {"n_samples": 4}, "relative_stability": {"n_samples": 4},
    "monotonicity_correlation": {"n_samples": 2}, "irof": {"n_segments": 30},
    "infidelity": {"n_perturbations": 64}, "faithfulness_correlation": {"n_perturbations": 64},
}  # fmt: skip


def directed_metrics() -> tuple[str, ...]:
    """Every registered metric whose headline score has a direction (controls and descriptions have none: there is
    no 'worse' to react with)."""
    return tuple(n for n in METRICS.names() if METRICS.get(n).higher_is_better is not None)


def default_assess_config() -> AssessConfig:
    metrics = directed_metrics()
    options = {k: v for k, v in META_METRIC_OPTIONS.items() if k in metrics}
    return AssessConfig(methods=DEFAULT_META_METHODS, metrics=metrics, metric_options=options)


@dataclass(frozen=True)
class MetaConfig:
    """The settings of a meta-evaluation.

    Attributes:
        assess: the methods, metrics and their options (default: saliency, Attention Rollout and the random map;
            every metric with a direction, the costliest at :data:`META_METRIC_OPTIONS`).
        tests: meta-evaluation tests (:data:`~depthscope.meta.perturbations.TESTS`; default all).
        repeats: draws of each test per image (different noise, a different randomisation or permutation).
        tolerance: a minor test moves the mean depth by at most this share; its noise is halved until it does.
        seed: image ``i``'s metric draws use ``seed + i`` in every test, so a score moves only by the test.
    """

    assess: AssessConfig = field(default_factory=default_assess_config)
    tests: tuple[str, ...] = field(default_factory=lambda: tuple(TESTS.names()))
    repeats: int = 2
    tolerance: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        for t in self.tests:
            TESTS.get(t)
        kinds = {TESTS.get(t).kind for t in self.tests}
        if kinds != {"minor", "disruptive"}:
            raise InputError("a meta-evaluation needs at least one minor and one disruptive test, got "
                             f"{', '.join(self.tests) or 'none'}")  # fmt: skip
        if self.repeats < 1:
            raise InputError(f"--repeats must be >= 1, got {self.repeats}")
        if not 0 < self.tolerance < 1:
            raise InputError(f"--tolerance must be in (0, 1), got {self.tolerance}")
        undirected = [m for m in self.assess.metrics if METRICS.get(m).higher_is_better is None]
        if undirected:
            raise InputError(f"{', '.join(undirected)} has no direction (a control or a description): a "
                             "meta-evaluation reads scores that can get worse")  # fmt: skip
        if len([m for m in self.assess.methods if m not in CONTROL_METHODS]) < 1 or len(self.assess.methods) < 2:
            raise InputError("a meta-evaluation needs at least two methods, one of them not a control")

    def settings(self) -> dict[str, Any]:
        return {"assess": self.assess.settings(), "methods": list(self.assess.methods), "tests": list(self.tests),
                "repeats": self.repeats, "tolerance": self.tolerance, "seed": self.seed}  # fmt: skip

    def runs(self) -> list[tuple[str, int]]:
        """``(test, repeat)`` of every assessment of one image: the unperturbed one first."""
        return [(UNPERTURBED, 0)] + [(t, k) for t in self.tests for k in range(self.repeats)]


@dataclass
class MetaResult:
    """Per metric: its consistencies and reliabilities (``rows``), per metric and test (``tests``), and the
    metrics' internal consistency as one scale (``cronbach_alpha``, and without each metric)."""

    rows: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    cronbach_alpha: float
    plan: dict[str, Any]


def mean_depth(model: DepthModel, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(model(x)[0, 0].double().mean())


def perturb(
    test: str, model: DepthModel, x: torch.Tensor, seed: int, tolerance: float
) -> tuple[Perturbed, float, float]:
    """One draw of ``test``: what it perturbs, its strength and the relative change of the mean depth. A minor
    test's noise is halved (up to 6 times) until the depth moves by at most ``tolerance``."""
    t = TESTS.get(test)
    base = mean_depth(model, x)
    strength = t.strength
    for _ in range(7):
        p = t.apply(model, x, strength, seed)
        change = abs(mean_depth(p.model, p.x) - base) / max(abs(base), 1e-12)  # of the model scored
        if t.kind != "minor" or change <= tolerance:
            break
        strength /= 2
    return p, strength, change


def meta_evaluate(
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    config: MetaConfig | None = None,
    out: str | os.PathLike = "out/meta",
    limit: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    force_new: bool = False,
    weights: str | None = None,
    dry_run: bool = False,
) -> MetaResult:
    """Meta-evaluate the assessment metrics on ``model`` over ``data``: which scores to trust for this model.

    Args:
        model: a :class:`DepthModel` or a model name.
        data: a dataset or a path :func:`depthscope.open_dataset` reads.
        config: the methods, metrics, tests and their settings (default :class:`MetaConfig`).
        out: the run folder: ``scores.csv`` (every score, resumable), ``meta.csv`` (one row per metric),
            ``meta_tests.csv`` (per metric and test), ``reliability.json``, ``plan.json``, ``settings.json``.
        limit: only the first ``limit`` images.
        device: where to load ``model`` when it is a name.
        progress: show a progress bar and the plan.
        force_new: move an earlier run in ``out`` aside and start afresh.
        weights: an explicit checkpoint for a model given by name.
        dry_run: run the first image's unperturbed assessment (which times every metric), print the plan, stop.

    Returns:
        A :class:`MetaResult`.

    Example:
        >>> import tempfile
        >>> from depthscope.data import find_data
        >>> from depthscope.assess import AssessConfig
        >>> cfg = MetaConfig(AssessConfig(methods=("saliency", "random"), metrics=("sparseness",)), repeats=1)
        >>> res = meta_evaluate("meter-xxs-nyu", find_data(), cfg, tempfile.mkdtemp(), limit=1)
        >>> [(r["metric"], r["iec_ar"]) for r in res.rows]
        [('sparseness', 0.6666666666666666)]
    """
    config = config or MetaConfig()
    check_limit(limit)
    model = load_model(model, weights=weights, device=device) if isinstance(model, str) else model
    ds = as_dataset(data, model.info.eval.dataset)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise InputError("the dataset is empty: nothing to meta-evaluate")
    out = Path(out)
    with RunLock(out):
        claim_folder(out, ds.identity(), force_new)
        chunks, _ = resume_settings(out / "settings.json", config.settings())
        chunk = chunks.get(model.name) or tune_chunk_size(model, ds[0].image[None].to(model.device), 32, backward=False)
        write_json(out / "settings.json", {**config.settings(), "forward_chunk_size": {model.name: chunk},
                                          "model_weights": {model.name: model.weights_record}})  # fmt: skip
        heads = [METRICS.get(m).headline or m for m in config.assess.metrics]
        columns = ["test", "repeat", "image", "method", "strength", "depth_change", *heads]
        sink = CsvAppender(out / "scores.csv", columns)
        return _run(model, ds, n, config, out, sink, heads, chunk, progress, dry_run)


def _run(
    model: DepthModel,
    ds: DepthDataset,
    n: int,
    config: MetaConfig,
    out: Path,
    sink: CsvAppender,
    heads: list[str],
    chunk: int,
    progress: bool,
    dry_run: bool,
) -> MetaResult:
    methods = config.assess.methods
    have: dict[tuple[str, str, str], set[str]] = {}
    for r in sink.rows:
        have.setdefault((r["test"], r["repeat"], r["image"]), set()).add(r["method"])
    runs = config.runs()
    jobs = [(i, t, k) for i in range(n) for t, k in runs
            if have.get((t, str(k), ds.key(i)), set()) != set(methods)]  # fmt: skip
    seconds: dict[str, float] = {}
    bar = tqdm(total=n * len(runs), desc=f"meta-evaluate {model.name}", disable=not progress)
    bar.update(n * len(runs) - len(jobs))
    plan: dict[str, Any] = {}
    timed = False
    for i, test, k in jobs:
        s = ds[i]
        x = s.image[None].to(model.device)
        gt = None if s.depth is None else s.depth.to(model.device)
        if test == UNPERTURBED:
            p, strength, change = Perturbed(model, x), 0.0, 0.0
        else:
            p, strength, change = perturb(test, model, x, stream_seed(config.seed + i, f"{test}_{k}"), config.tolerance)
            if TESTS.get(test).kind == "minor" and change > config.tolerance:
                warn(f"{test} on {s.name}: the weakest noise tried still moves the mean depth by {change:.1%}")
        bar.set_postfix_str(f"{s.name}: {test} {k}", refresh=True)
        t0, per_metric = time.perf_counter(), {}
        for method, row in assess_image(p.model, p.x, config.assess, gt, config.seed + i, chunk,
                                        map_transform=p.transform, metric_seconds=per_metric,
                                        map_model=p.map_model):  # fmt: skip
            sink.append({"test": test, "repeat": k, "image": s.name, "method": method, "strength": strength,
                         "depth_change": change, **{h: row[h] for h in heads}})  # fmt: skip
        run_seconds = time.perf_counter() - t0
        for name, sec in per_metric.items():
            seconds[name] = seconds.get(name, 0.0) + sec
        seconds["maps and overhead"] = seconds.get("maps and overhead", 0.0) + run_seconds - sum(per_metric.values())
        bar.update()
        if not timed:  # the first run done times every metric: the plan of the rest
            timed = True
            plan = _plan(model, config, n, len(jobs), per_metric, run_seconds)
            write_json(out / "plan.json", plan)
            if progress or dry_run:
                _print_plan(plan)
            if dry_run:
                bar.close()
                return MetaResult([], [], float("nan"), plan)
    bar.close()
    if plan:
        plan["measured_s"] = {k: round(v, 2) for k, v in seconds.items()}
        write_json(out / "plan.json", plan)
    rows, tests, alpha = summarise(sink.rows, config, heads)
    write_csv(out / "meta.csv", rows)
    write_csv(out / "meta_tests.csv", tests)
    write_json(out / "reliability.json", {"cronbach_alpha": alpha["all"], "cronbach_alpha_without": alpha["without"],
                                          "images": n, "methods": list(config.assess.methods)})  # fmt: skip
    return MetaResult(rows, tests, alpha["all"], plan)


def _plan(model: DepthModel, config: MetaConfig, n: int, jobs: int, per_metric: dict[str, float],
          run_seconds: float) -> dict[str, Any]:  # fmt: skip
    """Per metric, its seconds in the first run and projected over every run left; the whole run's projection."""
    runs = len(config.runs())
    rows = [{"metric": m, "seconds_per_run": round(sec, 2), "runs": jobs, "projected_s": round(sec * jobs, 1)}
            for m, sec in per_metric.items()]  # fmt: skip
    other = run_seconds - sum(per_metric.values())
    rows.append({"metric": "maps and overhead", "seconds_per_run": round(other, 2), "runs": jobs,
                 "projected_s": round(other * jobs, 1)})  # fmt: skip
    return {"model": model.name, "images": n, "runs_per_image": runs, "runs_left": jobs, "metrics": rows,
            "projected_s": round(run_seconds * jobs, 1),
            "note": "timed on the first run (image 0 unperturbed); perturbed runs of adaptive metrics may differ"}  # fmt: skip


def _print_plan(plan: dict[str, Any]) -> None:
    from depthscope.output.tables import format_table

    print(f"plan: {plan['model']}: {plan['images']} image(s) x {plan['runs_per_image']} assessments "
          f"({plan['runs_left']} left); projected {plan['projected_s'] / 60:.1f} min", file=sys.stderr)  # fmt: skip
    print(format_table(plan["metrics"], digits=2), file=sys.stderr)


def _aligned(value: float, higher_is_better: bool) -> float:
    return value if higher_is_better else -value


def summarise(
    rows: Sequence[dict[str, Any]], config: MetaConfig, heads: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The per-metric table, the per-metric-and-test table and Cronbach's alpha from the scores rows."""
    methods = list(config.assess.methods)
    tested = [m for m in methods if m not in CONTROL_METHODS]
    score: dict[tuple[str, int, str, str], dict[str, float]] = {}
    images: list[str] = []
    for r in rows:
        score[(r["test"], int(r["repeat"]), r["image"], r["method"])] = {h: float(r[h]) for h in heads}
        if r["image"] not in images:
            images.append(r["image"])
    images = [im for im in images if all((UNPERTURBED, 0, im, m) in score for m in methods)]
    out, per_test = [], []
    base = {h: np.array([[score[(UNPERTURBED, 0, im, m)][h] for m in methods] for im in images]) for h in heads}
    for name, h in zip(config.assess.metrics, heads, strict=True):
        up = bool(METRICS.get(name).higher_is_better)
        stats: dict[str, list[float]] = {"iac_nr": [], "iac_ar": [], "iec_nr": [], "iec_ar": []}
        for test in config.tests:
            minor = TESTS.get(test).kind == "minor"
            pairs = [(im, k) for im in images for k in range(config.repeats)
                     if all((test, k, im, m) in score for m in methods)]  # fmt: skip
            if not pairs:
                continue
            before = {m: [score[(UNPERTURBED, 0, im, m)][h] for im, _ in pairs] for m in methods}
            after = {m: [score[(test, k, im, m)][h] for im, k in pairs] for m in methods}
            if minor:
                iac = float(np.mean([paired_p(before[m], after[m]) for m in methods]))
                iec = float(np.mean([order_kept([before[m][j] for m in methods], [after[m][j] for m in methods])
                                     for j in range(len(pairs))]))  # fmt: skip
            else:
                iac = float(np.mean([1 - paired_p(before[m], after[m]) for m in tested]))
                iec = float(np.mean([got_worse(b, a, up) for m in tested
                                     for b, a in zip(before[m], after[m], strict=True)]))  # fmt: skip
            kind = "nr" if minor else "ar"
            stats[f"iac_{kind}"].append(iac)
            stats[f"iec_{kind}"].append(iec)
            per_test.append({"metric": name, "score": h, "test": test, "kind": TESTS.get(test).kind,
                             "intra_consistency": iac, "inter_consistency": iec, "pairs": len(pairs)})  # fmt: skip
        parts = {k: float(np.mean(v)) if v else float("nan") for k, v in stats.items()}
        b = base[h]
        ranks = np.argsort(np.argsort(-np.vectorize(_aligned)(b, up), axis=1, kind="stable"), axis=1) + 1.0
        agreement = []
        for other_name, oh in zip(config.assess.metrics, heads, strict=True):
            if oh == h:
                continue
            o_up = bool(METRICS.get(other_name).higher_is_better)
            for j in range(len(images)):
                agreement.append(spearman(torch.tensor([_aligned(v, up) for v in b[j]]),
                                          torch.tensor([_aligned(v, o_up) for v in base[oh][j]])))  # fmt: skip
        out.append({
            "metric": name, "score": h, "category": METRICS.get(name).category, "better": "higher" if up else "lower",
            **parts,
            "intra_consistency": float(np.nanmean([parts["iac_nr"], parts["iac_ar"]])),
            "inter_consistency": float(np.nanmean([parts["iec_nr"], parts["iec_ar"]])),
            "mc_score": float(np.nanmean(list(parts.values()))),
            "krippendorff_alpha": krippendorff_alpha(ranks, "ordinal") if len(images) > 1 else float("nan"),
            "rank_agreement": float(np.mean(agreement)) if agreement else float("nan"),
            "images": len(images),
        })  # fmt: skip
    aligned = np.stack([_zscore(np.vectorize(_aligned)(base[h], bool(METRICS.get(n).higher_is_better)).ravel())
                        for n, h in zip(config.assess.metrics, heads, strict=True)], axis=1)  # fmt: skip
    alpha = {"all": cronbach_alpha(aligned) if len(heads) > 1 else float("nan"),
             "without": {n: cronbach_alpha(np.delete(aligned, j, axis=1)) if len(heads) > 2 else float("nan")
                         for j, n in enumerate(config.assess.metrics)}}  # fmt: skip
    for r in out:
        r["cronbach_alpha_without"] = alpha["without"][r["metric"]]
    return out, per_test, alpha


def _zscore(v: np.ndarray) -> np.ndarray:
    s = v.std()
    return (v - v.mean()) / s if s > 0 else v - v.mean()


def display_meta(rows: Sequence[dict[str, Any]], digits: int = 2) -> list[dict[str, str]]:
    """The per-metric table for reading: the consistencies, MC score and reliabilities, best MC first."""

    def f(v: float) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"

    ordered = sorted(rows, key=lambda r: -float(r["mc_score"]) if not math.isnan(float(r["mc_score"])) else math.inf)
    return [{"metric": r["metric"], "category": r["category"], "resilience (NR) IAC": f(r["iac_nr"]),
             "IEC": f(r["iec_nr"]), "reactivity (AR) IAC": f(r["iac_ar"]), "IEC ": f(r["iec_ar"]),
             "MC": f(r["mc_score"]), "Krippendorff α": f(r["krippendorff_alpha"]),
             "rank agreement": f(r["rank_agreement"])} for r in ordered]  # fmt: skip
