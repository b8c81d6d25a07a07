"""``evaluate``: a model over a dataset, per-image metrics streamed to disk, aggregate at the end."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from depthscope.config import coerce
from depthscope.data.datasets import DataSpec, DepthDataset, check_limit, open_dataset
from depthscope.data.io import read_depth
from depthscope.data.prefetch import prefetch
from depthscope.errors import InputError, warn
from depthscope.metrics import boundary as _boundary  # noqa: F401  (registers boundary, dbe)
from depthscope.metrics import geometry as _geometry  # noqa: F401  (registers normals, pointcloud, planarity, binned)
from depthscope.metrics.align import ALIGNMENTS, apply_alignment
from depthscope.metrics.depth import METRIC_NAMES, aggregate, evaluate_depth, valid_mask
from depthscope.metrics.geometry import default_bins
from depthscope.metrics.registry import DEPTH_METRICS, DepthScene
from depthscope.models import DepthModel, load_model, warn_if_untrained, warn_untrained
from depthscope.models.base import RANDOM_WEIGHTS
from depthscope.ops.batching import reserve_one_core
from depthscope.output.depth import Intrinsics, encode_npy
from depthscope.output.files import CsvAppender, RunLock, output_path, write_atomic, write_json

DEFAULT_ALIGNMENT = {"depth": "none", "disparity": "lstsq-disparity", "relative": "lstsq-depth"}


@dataclass
class EvaluationResult:
    """Aggregate metrics (mean over images) and the per-image rows they came from."""

    model: str
    dataset: str
    metrics: dict[str, float]
    per_image: list[dict[str, float | str]] = field(default_factory=list)
    settings: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: a metric no image could score (NaN, e.g. boundaries on sparse ground truth) is null; each
        metric's unit and direction are stated beside the values (``units``, ``better``)."""
        units, better = metric_units(self.settings.get("metrics", {}))
        return {
            **{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in self.metrics.items()},
            "units": {k: units.get(k, "") for k in self.metrics},
            "better": {k: better[k] for k in self.metrics if k in better},
            "n_images": len(self.per_image),
            "model": self.model,
            "dataset": self.dataset,
            **self.settings,
        }


def depth_caps(
    model: DepthModel, ds: DepthDataset, min_depth: float | None = None, max_depth: float | None = None
) -> tuple[float, float]:
    """The depth caps (metres) a run scores within: given, else the benchmark's protocol (a zero-shot dataset has
    its own), else the model's."""
    e = model.info.eval
    lo = min_depth if min_depth is not None else getattr(ds, "min_depth", None) or e.min_depth
    hi = max_depth if max_depth is not None else getattr(ds, "max_depth", None) or e.max_depth
    return lo, hi


def metric_units(groups: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """``({metric: unit}, {metric: "higher" | "lower"})`` of the standard ten (silog: x 100, unitless) and of the
    columns of the depth metric ``groups`` run."""
    from depthscope.metrics.depth import LOWER_IS_BETTER, METRIC_UNITS

    units = {m: METRIC_UNITS.get(m, "") for m in METRIC_NAMES}
    better = {m: "lower" if LOWER_IS_BETTER[m] else "higher" for m in METRIC_NAMES}
    for name, opts in groups.items():
        if name == "standard":
            continue
        for c in DEPTH_METRICS.get(name).columns(opts):
            units[c.name], better[c.name] = c.unit, "lower" if c.lower_is_better else "higher"
    return units, better


def resolve_crop(crop: str | None, dataset: str, model: DepthModel) -> str:
    """``eigen`` means KITTI's Eigen crop on KITTI; ``None`` means the model's own protocol."""
    crop = crop or model.info.eval.crop
    return "eigen_kitti" if crop == "eigen" and dataset == "kitti" else crop


@torch.no_grad()
def check_prediction(model: DepthModel, pred: torch.Tensor, where: str) -> None:
    """Refuse a model whose prediction is not finite, and say so loudly when a metric model's median prediction is
    far outside its evaluation range (wrong weights, wrong preprocessing): never a silently wrong number."""
    if not torch.isfinite(pred).all():
        raise InputError(
            f"{model.name} predicts NaN/Inf on {where} (weights: {model.info.weights or 'random'}); the checkpoint "
            "or the model's preprocessing is broken"
        )
    if model.preprocessing.output != "depth":
        return
    med, (lo, hi) = float(pred.median()), (model.info.eval.min_depth, model.info.eval.max_depth)
    if not 0.01 * hi <= med <= 2 * hi:
        warn(
            f"{model.name} predicts a median depth of {med:.3g} m on {where}, outside what its protocol "
            f"({lo:g}..{hi:g} m) expects: are the weights ({model.info.weights or 'random'}) and the dataset right?"
        )


def evaluate(
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    *,
    dataset: str | None = None,
    depth_scale: float | None = None,
    crop: str | None = None,
    min_depth: float | None = None,
    max_depth: float | None = None,
    median_scaling: bool = False,
    align: str | None = None,
    device: str | torch.device | None = None,
    out: str | os.PathLike | None = None,
    limit: int | None = None,
    progress: bool = False,
    predictions: str | os.PathLike | None = None,
    pred_scale: float | None = None,
    weights: str | None = None,
    engine: Any = None,
    metrics: str | Sequence[str] = ("standard",),
    metric_options: Mapping[str, Mapping[str, Any]] | None = None,
    intrinsics: Intrinsics | str | None = None,
    fov: float | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` with the standard metrics (depth in metres), as BTS/AdaBins/NeWCRFs do.

    Args:
        model: a :class:`~depthscope.models.DepthModel` or a model name.
        data: a dataset or a path :func:`~depthscope.data.open_dataset` reads as ``dataset``.
        dataset: ``nyu``, ``kitti`` or ``pairs`` (default: the model's protocol).
        depth_scale: integer depth PNG value / scale = metres (NYU 1000, KITTI 256).
        crop: ``eigen``, ``garg``, ``eigen_kitti`` or ``none`` (default: the model's protocol).
        min_depth: lower depth cap in metres (default: the model's, 1e-3).
        max_depth: upper depth cap in metres (default: the model's, NYU 10, KITTI 80).
        median_scaling: the same as ``align="median"``.
        align: fit each prediction to its ground truth first: ``none`` (default for metric models), ``median``,
            ``lstsq-depth`` (default for relative depth) or ``lstsq-disparity`` (default for disparity outputs).
        device: where to run (a name loads there).
        out: per-image rows go to ``out/per_image.csv`` as they are computed, the aggregate to ``out/metrics.json``;
            the predictions of images without ground truth to ``out/predictions/<key>.npy`` (metres).
        limit: only the first ``limit`` images.
        progress: a progress bar.
        predictions: score saved depth maps instead of running ``model`` (whose protocol still sets crop and
            caps): ``predictions/<key>.npy`` (metres) or ``<key>.png`` (16-bit), as ``depthscope predict`` writes.
        pred_scale: the 16-bit predictions' value per metre (default: the ``depth_scale`` in
            ``predictions/predict.json``, else 1000).
        weights: an explicit checkpoint for a model given by name.
        engine: None: this process; a :class:`depthscope.engine.RayEngine`: Ray workers predict and score the
            images (model by name, data by path or :class:`~depthscope.data.DataSpec`), this process writes.
        metrics: ``standard`` (the ten) and any registered group (:data:`~depthscope.metrics.DEPTH_METRICS`):
            ``boundary`` (Depth Pro's boundary F1/recall), ``dbe`` (iBims-1 depth boundary errors), ``normals``,
            ``pointcloud`` (Chamfer, F-score@tau), ``planarity`` (iBims-1 planes), ``binned`` (per depth bin).
        metric_options: per group, its options (e.g. ``{"pointcloud": {"tau": 0.1}, "binned": {"bins": [0, 5, 80]}}``).
        intrinsics: the camera (``fx,fy,cx,cy`` in pixels) for ``normals``, ``pointcloud`` and ``planarity`` when
            the dataset has none (NYU's is known); ``fov``: or a centred camera of this horizontal field of view.

    Returns:
        An :class:`EvaluationResult`: ``metrics`` (mae, rmse, rmse_log, abs_rel, sq_rel, log10, silog, delta1-3)
        over the images with ground truth, and ``per_image`` rows. Images without ground truth are predicted,
        counted in ``settings["n_without_gt"]`` and not scored.

    Example:
        >>> from depthscope.data import find_data
        >>> res = evaluate("meter-xxs-nyu", find_data(), crop="eigen")
        >>> round(res.metrics["rmse"], 4), round(res.metrics["abs_rel"], 4), len(res.per_image)
        (0.5604, 0.1763, 10)
    """
    model_name = model
    if engine is not None:  # the workers load the model; here only its protocol and outputs are needed
        if not isinstance(model, str) or isinstance(data, DepthDataset) or predictions is not None:
            raise InputError("--engine ray evaluates a model given by name on data given by path (each worker loads "
                             "its own copy), not saved --predictions")  # fmt: skip
        data = data if isinstance(data, DataSpec) else DataSpec(str(data), dataset, depth_scale)
        model = load_model(model, weights=weights, device="meta")
    elif isinstance(model, str):
        model = load_model(model, weights=weights, device=device or "cpu")
    elif device is not None:
        model = model.to(device)
    model.eval()
    dev = model.device
    if isinstance(data, DataSpec):
        ds = data.open(dataset or model.info.eval.dataset)
    else:
        ds = (
            data
            if isinstance(data, DepthDataset)
            else open_dataset(data, dataset or model.info.eval.dataset, depth_scale)
        )
    crop = resolve_crop(crop, ds.name, model)
    lo, hi = depth_caps(model, ds, min_depth, max_depth)
    check_limit(limit)
    n = len(ds) if limit is None else min(limit, len(ds))
    if n == 0:
        raise InputError("the dataset is empty")
    output = model.preprocessing.output
    if median_scaling and align not in (None, "median"):
        raise InputError(f"--median-scaling and --align {align} ask for two different fits; give one of them")
    align = "median" if median_scaling else (align or DEFAULT_ALIGNMENT[output])
    if align not in ALIGNMENTS:
        raise InputError(f"unknown alignment {align!r}; valid: {', '.join(ALIGNMENTS)}")
    if output == "depth" and align != "none":
        warn(f"--align {align} fits {model.name}'s metric depth to each image's ground truth: the metrics measure "
             "the shape of the depth, not its metric accuracy (the fitted scale and shift are in per_image.csv)")  # fmt: skip
    fitted = {"none": [], "median": ["scale"]}.get(align, ["scale", "shift"])
    groups = metric_groups(metrics, metric_options, intrinsics, fov, ds, hi)
    extra = [c.name for name, opts in groups.items() for c in DEPTH_METRICS.get(name).columns(opts)]
    columns = ["image", *METRIC_NAMES, "n_valid", *fitted, *extra]
    read_pred = None if predictions is None else saved_predictions(predictions, pred_scale)
    # one run writes a folder at a time; a rerun starts from nothing, so a failure halfway cannot leave the last
    # run's metrics.json beside this run's per-image rows
    with RunLock(out) if out is not None else contextlib.nullcontext():
        sink = None
        if out is not None:
            for stale in ("per_image.csv", "metrics.json"):
                (Path(out) / stale).unlink(missing_ok=True)
            sink = CsvAppender(Path(out) / "per_image.csv", columns)
        rows: list[dict[str, float | str]] = []
        without_gt: list[str] = []

        scoring = {"min_depth": lo, "max_depth": hi, "crop": crop, "align": align, "output": output,
                   "groups": groups, "fov": fov,
                   "intrinsics": None if intrinsics is None else list(dataclasses.astuple(_camera(intrinsics)))}  # fmt: skip

        def keep(name: str, pred: Any) -> None:  # an image without ground truth: predicted, kept, not scored
            without_gt.append(name)
            if out is not None:
                write_atomic(output_path(out, f"predictions/{name}.npy"), encode_npy(pred))

        def add(row: dict[str, float | str]) -> None:
            rows.append(row)
            if sink is not None:
                sink.append(row)

        def score(sample: Any, pred: torch.Tensor) -> dict[str, float | str] | None:
            name = sample.name
            row = score_prediction(name, pred, sample.depth, scoring, sample)
            if row is None:
                keep(name, pred.numpy())
            return row

        def collect(fut: Future) -> None:
            row = fut.result()
            if row is not None:
                add(row)
            bar.update()

        bar = tqdm(total=n, desc=f"evaluate {model.name}", disable=not progress)
        if engine is not None:  # Ray workers predict and score; this process alone writes
            status = functools.partial(bar.set_postfix_str, refresh=True)
            run = engine.evaluate(model_name, weights, data, device or "cpu", n, scoring, status)
            try:
                weights_record = run.info["weights"]  # the workers' model: the meta copy here has none
                if weights_record == RANDOM_WEIGHTS:
                    warn_untrained(model.name, "its metrics describe no trained model")
                for name, row, pred in run:
                    if row is None:
                        keep(name, pred)
                    else:
                        add(row)
                    bar.update()
            finally:
                run.close()
        else:
            weights_record = model.weights_record
            if read_pred is None and str(dev) != "meta":
                warn_if_untrained(model, "its metrics describe no trained model")
            # Pipeline over two cores: one worker thread decodes upcoming images and scores finished predictions
            # while the main thread runs the forward pass (PNG decoding and metrics release the GIL).
            with ThreadPoolExecutor(max_workers=1) as worker, reserve_one_core(dev):
                pending: Future | None = None
                for i, sample in enumerate(prefetch(ds.__getitem__, n, pool=worker)):
                    if read_pred is not None:
                        pred = read_pred(sample.name, tuple(sample.image.shape[-2:]))
                    else:
                        with torch.no_grad():
                            pred = model(sample.image.unsqueeze(0).to(dev))[0, 0].cpu()
                    if i == 0:
                        check_prediction(model, pred, sample.name)
                    if pending is not None:
                        collect(pending)
                    pending = worker.submit(score, sample, pred)
                if pending is not None:
                    collect(pending)
        bar.close()
        settings = {
            "crop": crop, "min_depth": lo, "max_depth": hi, "align": align, "model_output": output,
            "weights": weights_record, "predictions": None if predictions is None else str(predictions),
            "n_without_gt": len(without_gt),
        }  # fmt: skip
        if without_gt:
            where = f" (their depth: {Path(out) / 'predictions'}/<image>.npy)" if out is not None else ""
            warn(f"{len(without_gt)} of {n} images had no ground-truth depth: predicted, not scored{where}")
        settings["metrics"] = {"standard": {}, **{k: dict(v) for k, v in groups.items()}}
        totals = aggregate(rows) if rows else {}
        for c in extra:
            vals = [float(r[c]) for r in rows if not math.isnan(float(r[c]))]
            totals[c] = sum(vals) / len(vals) if vals else math.nan
        result = EvaluationResult(model.name, ds.name, totals, rows, settings)
        if out is not None:
            write_json(Path(out) / "metrics.json", result.to_dict())
        return result


def score_prediction(
    name: str, pred: torch.Tensor, gt: torch.Tensor | None, scoring: dict[str, Any], sample: Any = None
) -> dict[str, float | str] | None:
    """The per-image row of ``pred`` against ``gt`` (None without ground truth) under ``scoring`` (``min_depth``,
    ``max_depth``, ``crop``, ``align``, ``output``, and the metric ``groups`` with their options, the camera
    ``intrinsics`` or ``fov``): what both engines compute for one image. ``sample`` (a
    :class:`~depthscope.data.datasets.Sample`) gives the dataset's camera and annotations."""
    if gt is None:
        return None
    s = scoring
    row = evaluate_depth(pred, gt, s["min_depth"], s["max_depth"], s["crop"], align=s["align"], output=s["output"])
    groups = s.get("groups") or {}
    if groups:
        full = apply_alignment(pred.squeeze(), s["align"], {k: row[k] for k in ("scale", "shift") if k in row},
                               s["output"], s["max_depth"])  # fmt: skip
        full = torch.nan_to_num(full, nan=s["min_depth"], posinf=s["max_depth"]).clamp(s["min_depth"], s["max_depth"])
        g = gt.squeeze()
        cam = s.get("intrinsics") or getattr(sample, "intrinsics", None)
        k = Intrinsics(*cam) if cam else (Intrinsics.from_fov(s["fov"], *g.shape) if s.get("fov") else None)
        scene = DepthScene(full, g.double(), valid_mask(g, s["min_depth"], s["max_depth"], s["crop"]), k,
                           getattr(sample, "annotations", None) or {})  # fmt: skip
        for group, options in groups.items():
            row |= DEPTH_METRICS.get(group).fn(scene, options)
    return {"image": name, **row}


def metric_groups(
    names: str | Sequence[str],
    options: Mapping[str, Mapping[str, Any]] | None,
    intrinsics: Any,
    fov: float | None,
    ds: DepthDataset,
    max_depth: float = 10.0,
) -> dict[str, dict[str, Any]]:
    """``{group: options}`` of the non-standard metric groups named (``standard`` is always computed), their
    options checked against each group's defaults; a group that needs a camera or annotations the run cannot give
    is refused before any work."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    options = dict(options or {})
    groups: dict[str, dict[str, Any]] = {}
    first: Any = None
    for name in items:
        if name == "standard":
            continue
        group = DEPTH_METRICS.get(name)
        given = dict(options.pop(name, {}))
        unknown = sorted(set(given) - set(group.defaults))
        if unknown:
            raise InputError(f"depth metric group {name} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(group.defaults) or 'none'}")  # fmt: skip
        for key, value in given.items():
            default = group.defaults[key]
            if isinstance(default, int | float) and not isinstance(default, bool):
                given[key] = coerce(value, type(default), f"{name}.{key}")
                if not given[key] > 0:
                    raise InputError(f"{name}.{key} must be > 0, got {value}")
        groups[name] = {**group.defaults, **given}
        if name == "binned" and groups[name]["bins"] is None:
            groups[name]["bins"] = default_bins(max_depth)
        group.columns(groups[name])  # options checked now
        if group.needs and first is None and len(ds):
            first = ds[0]  # the dataset's camera and annotations (decoded once, only when a group needs them)
        if (
            "intrinsics" in group.needs
            and intrinsics is None
            and fov is None
            and getattr(first, "intrinsics", None) is None
        ):
            raise InputError(f"--metrics {name} needs the camera: --intrinsics fx,fy,cx,cy or --fov DEG (this "
                             f"dataset has no intrinsics)")  # fmt: skip
        for need in set(group.needs) - {"intrinsics"}:
            if first is None or need not in (first.annotations or {}):
                raise InputError(f"--metrics {name} needs the dataset's {need} annotations (iBims-1 has them)")
    if options:
        raise InputError(f"options given for metric groups not requested: {', '.join(sorted(options))}")
    if intrinsics is not None:
        _camera(intrinsics)
    if fov is not None:
        Intrinsics.from_fov(fov, 2, 2)
    return groups


def _camera(intrinsics: Intrinsics | str) -> Intrinsics:
    return Intrinsics.parse(intrinsics) if isinstance(intrinsics, str) else intrinsics


def saved_predictions(
    folder: str | os.PathLike, scale: float | None = None
) -> Callable[[str, tuple[int, int]], torch.Tensor]:
    """A reader of the depth maps ``depthscope predict`` saved in ``folder``: ``read(key, (H, W))`` gives metres
    from ``<key>.npy``, else ``<key>.png`` (16-bit / ``scale``: by default the ``depth_scale`` in
    ``predict.json``, else 1000); a missing file or a map of another size is one error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--predictions {folder}: no such folder")
    recorded = None
    if (folder / "predict.json").is_file():
        meta = json.loads((folder / "predict.json").read_text())
        if meta.get("unit", "m") != "m":
            raise InputError(f"--predictions {folder}: holds {meta['unit']} maps, not metric depth")
        recorded = meta.get("depth_scale")
    if scale is not None and recorded is not None and float(recorded) != float(scale):
        raise InputError(f"--pred-scale {scale:g} differs from the depth_scale {recorded:g} in {folder}/predict.json")
    scale = float(scale or recorded or 1000.0)

    def read(key: str, shape: tuple[int, int]) -> torch.Tensor:
        for suffix in (".npy", ".png"):
            if (folder / f"{key}{suffix}").is_file():
                depth = read_depth(folder / f"{key}{suffix}", scale)
                break
        else:
            raise InputError(f"--predictions {folder}: no {key}.npy or {key}.png for image {key}")
        if tuple(depth.shape) != shape:
            raise InputError(f"{folder / key}: prediction is {tuple(depth.shape)} but the image is {shape}")
        return depth

    return read
