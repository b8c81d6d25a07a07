"""``predict``: run a model over images without ground truth and save the depth in standard encodings.

A pipeline over three threads: one decodes the next images (PIL and NumPy release the GIL), the main thread runs
the batched forward pass, one encodes and writes the finished maps, so decoding and encoding overlap the model.
Every file is written atomically and a rerun skips images whose files all exist: an interrupted run loses nothing.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from depthscope.data.images import ImageSource, find_images, is_video
from depthscope.data.io import check_depth_scale, check_image_tensor, read_image
from depthscope.errors import InputError, warn
from depthscope.models import DepthModel, load_model, warn_if_untrained
from depthscope.ops.batching import reserve_one_core
from depthscope.output.depth import (
    FORMATS,
    PNG16_MAX,
    Intrinsics,
    backproject,
    encode_color,
    encode_npy,
    encode_ply,
    encode_png16,
)
from depthscope.output.files import CsvAppender, RunLock, claim_folder, output_path, write_atomic, write_json

SUFFIX = {"npy": ".npy", "png16": ".png", "color": "_color.png", "ply": ".ply"}
FORMAT_NAMES = {"npy": "depth .npy", "png16": "16-bit depth PNG", "color": "colour preview", "ply": "point cloud"}
COLUMNS = ("image", "source", "height", "width", "depth_min", "depth_median", "depth_max", "png16_clipped")
SETTINGS = "predict.json"
PENDING_WRITES = 4  # batches being encoded at once: bounds memory when encoding is slower than the model


@dataclass
class PredictResult:
    """What a :func:`predict` run did: images written now, images already done, unreadable inputs (path and
    reason), pixels clipped in the 16-bit PNGs, and the output folder."""

    out: Path
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    png16_clipped: int = 0
    unit: str = "m"
    seconds: float = 0.0


def output_files(out: Path, key: str, formats: Sequence[str]) -> dict[str, Path]:
    """Where each format of image ``key`` goes: ``out/<key>.npy``, ``.png`` (16-bit), ``_color.png``, ``.ply``;
    always inside ``out`` (:func:`~depthscope.output.files.output_path`)."""
    return {f: output_path(out, f"{key}{SUFFIX[f]}") for f in formats}


def check_collisions(src: ImageSource, formats: Sequence[str]) -> None:
    """One clear error when two inputs' files would share a name (``x_color.png``'s 16-bit depth PNG and
    ``x.png``'s colour preview are both ``x_color.png``): one would silently replace the other."""
    owner: dict[str, str] = {}
    for path, key in zip(src.files, src.keys, strict=True):
        for f in formats:
            name = f"{key}{SUFFIX[f]}"
            if owner.setdefault(name, f"{path}'s {FORMAT_NAMES[f]}") != f"{path}'s {FORMAT_NAMES[f]}":
                raise InputError(
                    f"{owner[name]} and {path}'s {FORMAT_NAMES[f]} would both be written to {name}; rename one "
                    "of the inputs, or drop a --format"
                )


def check_formats(formats: Sequence[str] | str) -> tuple[str, ...]:
    items = tuple(f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip())
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise InputError(f"--format {','.join(items) or '(empty)'}: valid formats are {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def check_encodable(
    depth: np.ndarray, source: str, formats: Sequence[str], depth_scale: float | None, intrinsics: Intrinsics | None
) -> None:
    """One clear error for output settings that would store nothing true about ``depth`` (metres, ``(H, W)``):
    a ``depth_scale`` that rounds every depth to 0 (the 16-bit PNG's "invalid"), or ``intrinsics`` whose principal
    point lies outside the image or whose points are not finite."""
    valid = depth[np.isfinite(depth) & (depth > 0)]
    if "png16" in formats and depth_scale is not None and valid.size and float(valid.max()) * depth_scale < 0.5:
        raise InputError(
            f"--depth-scale {depth_scale:g} stores every depth of {source} ({float(valid.min()):.3g}.."
            f"{float(valid.max()):.3g} m) as 0, the 16-bit PNG's 'invalid'; use a scale of at least "
            f"{1 / float(valid.min()):.3g} (1000: millimetres)"
        )
    if "ply" in formats and intrinsics is not None:
        h, w = depth.shape
        if not (-0.5 <= intrinsics.cx <= w - 0.5 and -0.5 <= intrinsics.cy <= h - 0.5):
            raise InputError(
                f"--intrinsics: the principal point ({intrinsics.cx:g}, {intrinsics.cy:g}) lies outside the {w}x{h} "
                f"image {source}; cx, cy are pixel coordinates of the optical axis (about {w / 2:g}, {h / 2:g})"
            )
        with np.errstate(over="ignore", invalid="ignore"):
            points, _ = backproject(depth, intrinsics)
        if not np.isfinite(points).all():
            raise InputError(f"--intrinsics {intrinsics}: the points of {source} are not finite; fx, fy are too small")


def _check_out(out: Path, src: ImageSource) -> None:
    spec = Path(src.spec)
    if spec.is_file():  # one file or a CSV: nothing under their folder is read as an input
        return
    root, o = src.root.resolve(), out.resolve()
    if o == root or root in o.parents:
        raise InputError(
            f"--out {out} is inside --images {src.spec}: the next run would read the outputs as inputs; "
            "choose an output folder outside it"
        )


def _resume(path: Path, settings: dict[str, Any]) -> None:
    """Refuse to add files of other settings to a folder (one depth scale, model and camera per folder)."""
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(k for k in settings if k != "formats" and before.get(k) != settings[k])
        if changed:
            raise InputError(
                f"{path.parent} holds predictions made with other settings ({', '.join(changed)}); "
                "use another --out or the same settings"
            )
        settings = {**settings, "formats": sorted(set(before.get("formats", [])) | set(settings["formats"]))}
    write_json(path, settings)


def _frames(src: ImageSource, done: set[str], formats: Sequence[str], out: Path) -> Iterator[tuple[str, str, Any]]:
    """``(key, source, image tensor | error text | None)`` in order; None: already done (not decoded)."""
    for path, key in zip(src.files, src.keys, strict=True):
        if is_video(path):
            yield from _video_frames(path, key, formats, out)
            continue
        if key in done and all(p.exists() for p in output_files(out, key, formats).values()):
            yield key, str(path), None
            continue
        try:
            yield key, str(path), read_image(path)
        except InputError as e:
            yield key, str(path), str(e)


def _video_frames(path: Path, key: str, formats: Sequence[str], out: Path) -> Iterator[tuple[str, str, Any]]:
    try:
        import av
    except ImportError:
        yield key, str(path), f'{path}: reading video needs PyAV: pip install -e ".[video]"'
        return
    k = -1
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                yield key, str(path), f"{path}: holds no video stream (audio or data only)"
                return
            for k, frame in enumerate(container.decode(video=0)):
                fkey = f"{key}/frame_{k:06d}"
                if all(p.exists() for p in output_files(out, fkey, formats).values()):
                    yield fkey, f"{path}#{k}", None
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
                try:
                    yield fkey, f"{path}#{k}", check_image_tensor(image, f"{path} frame {k}")
                except InputError as e:
                    yield fkey, f"{path}#{k}", str(e)
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as e:  # type: ignore[attr-defined]
        where = f"after frame {k}" if k >= 0 else "before its first frame"
        yield key, str(path), f"{path}: not a readable video, {where} ({type(e).__name__}: {e})"
        return
    if k < 0:
        yield key, str(path), f"{path}: the video has no frame"


def _background(items: Iterator[Any], ahead: int) -> Iterator[Any]:
    """Iterate ``items`` in a daemon thread, up to ``ahead`` in advance (decoding overlaps the forward pass)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, ahead))
    end = object()

    def run() -> None:
        try:
            for item in items:
                q.put(item)
        except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
            q.put(e)
        q.put(end)

    threading.Thread(target=run, daemon=True).start()
    while (item := q.get()) is not end:
        if isinstance(item, BaseException):
            raise item
        yield item


def predict(
    model: DepthModel | str,
    images: str | os.PathLike | ImageSource,
    out: str | os.PathLike,
    formats: Sequence[str] | str = ("npy", "png16"),
    depth_scale: float = 1000.0,
    intrinsics: Intrinsics | str | None = None,
    fov: float | None = None,
    batch: int = 1,
    device: str = "cpu",
    progress: bool = False,
    force_new: bool = False,
) -> PredictResult:
    """Predict the depth of every image of ``images`` and save it under ``out``, mirroring the input folders.

    Args:
        model: a :class:`DepthModel` or a model name.
        images: a folder, a glob, one image or video file, or a CSV of image paths (:func:`find_images`).
        out: output folder: ``<key>.npy`` (float32 metres), ``<key>.png`` (uint16, metres x ``depth_scale``),
            ``<key>_color.png`` (preview with a colourbar in metres), ``<key>.ply`` (coloured points, metres),
            ``predictions.csv`` (one row per image) and ``predict.json`` (the settings). Must not be inside a
            folder or glob of ``images``.
        formats: any of ``npy``, ``png16``, ``color``, ``ply``.
        depth_scale: the 16-bit PNG's value per metre (1000: millimetres, as NYU; 256: KITTI).
        intrinsics: ``fx,fy,cx,cy`` in pixels of the input images (for ``ply``).
        fov: horizontal field of view in degrees, a centred camera (for ``ply`` without ``intrinsics``).
        batch: images per forward pass (consecutive images of one size share a batch).
        device: where to load ``model`` when it is a name.
        progress: a progress bar.
        force_new: ``out`` holds an earlier run: move its files to ``out/previous-<time>/`` and start afresh
            (without it, a folder of other data is one clear error; ``out/dataset.json`` records the data).

    Returns:
        A :class:`PredictResult`. Relative (disparity) models write their raw output to ``.npy`` and a per-image
        min-max normalised 16-bit PNG; ``predict.json`` says so (``unit``).

    Example:
        >>> import tempfile, depthscope as ds
        >>> from depthscope.data import find_data
        >>> res = ds.predict("meter-xxs-nyu", find_data() / "image_0.png", tempfile.mkdtemp())
        >>> res.written, sorted(p.name for p in res.out.iterdir() if not p.name.startswith("."))
        (1, ['dataset.json', 'image_0.npy', 'image_0.png', 'predict.json', 'predictions.csv'])
    """
    t0 = time.perf_counter()
    formats = check_formats(formats)
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"--batch must be an integer >= 1, got {batch}")
    if isinstance(intrinsics, str):
        intrinsics = Intrinsics.parse(intrinsics)
    if "ply" in formats and intrinsics is None and fov is None:
        raise InputError("--format ply needs the camera: --intrinsics fx,fy,cx,cy (pixels) or --fov DEG")
    if fov is not None:
        Intrinsics.from_fov(fov, 2, 2)  # checks the range before any work
    if "png16" in formats:
        check_depth_scale(depth_scale)
    src = images if isinstance(images, ImageSource) else find_images(images)
    out = Path(out)
    _check_out(out, src)
    check_collisions(src, formats)
    model = load_model(model, device=device) if isinstance(model, str) else model
    model.eval()
    dev = model.device
    metric = model.preprocessing.output == "depth"
    if "ply" in formats and not metric:
        raise InputError(f"--format ply needs metric depth; {model.name} predicts {model.preprocessing.output}")
    unit = "m" if metric else f"{model.preprocessing.output} (relative, unitless)"
    warn_if_untrained(model, "its depth maps describe no trained model")
    settings = {
        "model": model.name, "weights": model.weights_record, "unit": unit,
        "depth_scale": depth_scale if metric else "per-image min-max to 0..65535",
        "intrinsics": None if intrinsics is None else [intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy],
        "fov_deg": fov, "formats": list(formats),
    }  # fmt: skip
    result = PredictResult(out, unit=unit)
    with RunLock(out):
        claim_folder(out, src.identity(), force_new)
        _resume(out / SETTINGS, settings)
        sink = CsvAppender(out / "predictions.csv", COLUMNS)
        done = {r["image"] for r in sink.rows}

        def write(keys: list[str], sources: list[str], imgs: list[torch.Tensor], depths: np.ndarray) -> int:
            clipped = 0
            for key, source, img, d in zip(keys, sources, imgs, depths, strict=True):
                files = output_files(out, key, formats)
                valid = d[np.isfinite(d) & (d > 0)]
                row_clipped = 0
                for fmt_, path in files.items():
                    if fmt_ == "npy":
                        data = encode_npy(d)
                    elif fmt_ == "png16":
                        if metric:
                            data, row_clipped = encode_png16(d, depth_scale)
                        else:
                            lo, hi = float(d.min()), float(d.max())
                            data, _ = encode_png16((d - lo) / max(hi - lo, 1e-12), PNG16_MAX)
                    elif fmt_ == "color":
                        data = encode_color(d, "depth (m)" if metric else f"{model.preprocessing.output} (relative)")
                    else:
                        cam = intrinsics or Intrinsics.from_fov(fov, *d.shape)  # type: ignore[arg-type]
                        rgb = (img.permute(1, 2, 0) * 255).round().byte().numpy()
                        data, _ = encode_ply(d, rgb, cam)
                    write_atomic(path, data)
                if key not in done:
                    stats = np.percentile(valid, [0, 50, 100]) if valid.size else [float("nan")] * 3
                    sink.append({
                        "image": key, "source": source, "height": d.shape[0], "width": d.shape[1],
                        "depth_min": float(stats[0]), "depth_median": float(stats[1]), "depth_max": float(stats[2]),
                        "png16_clipped": row_clipped,
                    })  # fmt: skip
                    done.add(key)
                clipped += row_clipped
            return clipped

        total = None if any(is_video(f) for f in src.files) else len(src)
        bar = tqdm(total=total, desc=f"predict {model.name}", unit="img", disable=not progress)
        pending: list[Future[int]] = []

        def finish(block: bool) -> None:
            while pending and (block or pending[0].done() or len(pending) >= PENDING_WRITES):
                result.png16_clipped += pending.pop(0).result()

        with ThreadPoolExecutor(max_workers=1) as writer, reserve_one_core(dev):
            group: list[tuple[str, str, torch.Tensor]] = []

            def flush() -> None:
                if not group:
                    return
                x = torch.stack([g[2] for g in group]).to(dev)
                with torch.no_grad():
                    depth = model(x)[:, 0].float().cpu().numpy()
                if not np.isfinite(depth).all():
                    raise InputError(f"{model.name} predicts NaN/Inf on {group[0][1]}; the checkpoint is broken")
                for (_, source, _), d in zip(group, depth, strict=True):  # before any of its files is written
                    check_encodable(d, source, formats, depth_scale if metric else None, intrinsics)
                keys, sources, imgs = zip(*group, strict=True)
                pending.append(writer.submit(write, list(keys), list(sources), list(imgs), depth))
                result.written += len(group)
                bar.update(len(group))
                group.clear()
                finish(block=False)

            for key, source, item in _background(_frames(src, done, formats, out), ahead=2 * batch):
                if item is None:
                    result.skipped += 1
                    bar.update()
                    continue
                if isinstance(item, str):
                    result.failed.append((source, item))
                    warn(item + " (skipped; the other images go on)")
                    bar.update()
                    continue
                if group and (len(group) == batch or group[0][2].shape != item.shape):
                    flush()
                group.append((key, source, item))
            flush()
            finish(block=True)
        bar.close()
    if result.png16_clipped:
        warn(
            f"{result.png16_clipped} pixels were deeper than {PNG16_MAX / depth_scale:g} m, the most a 16-bit PNG holds "
            f"at --depth-scale {depth_scale:g}: stored as {PNG16_MAX} (counted per image in predictions.csv)"
        )
    result.seconds = time.perf_counter() - t0
    return result
