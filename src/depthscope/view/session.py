"""What the explorer computes, without any web framework: one :class:`Explorer` holds the models, the current
image and its predictions; each handler of the page (``depthscope view``) is one call here, so the app, the
latency benchmark and the tests run the same code."""

from __future__ import annotations

import io
import json
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthscope.assess.fidelity import af_depth_correlation, af_perturbation
from depthscope.assess.perturbation import ORDERS, model_region, perturbation_curves
from depthscope.compare.agreement import depth_agreement, map_agreement
from depthscope.data.datasets import DepthDataset, open_dataset, protocol_intrinsics
from depthscope.data.io import read_image
from depthscope.errors import InputError
from depthscope.explain import METHODS, explain
from depthscope.explain.attribution import Attribution
from depthscope.explain.targets import parse_target
from depthscope.metrics import DEPTH_METRICS
from depthscope.metrics.evaluate import resolve_crop, score_prediction
from depthscope.metrics.geometry import default_bins
from depthscope.models import DepthModel, load_model
from depthscope.output.depth import colorize, robust_range, with_colorbar
from depthscope.output.figures import MAGNITUDE_CMAP, share_of_total

MAP_ALPHA = 0.65  # overlay opacity of a map over the grey image


@dataclass
class Panel:
    """One model's explanation of the current target: maps, seconds per map, the target's predicted depth."""

    model: str
    target: str
    maps: dict[str, Attribution]
    seconds: dict[str, float]
    target_depth_m: float
    weights: torch.Tensor  # (H, W), sums to 1

    def stats(self) -> dict[str, Any]:
        """What the page shows of each map: its sum, max and mean magnitude and where the max is (row, column)."""
        out: dict[str, Any] = {}
        for name, a in self.maps.items():
            m = a.magnitude[0]
            k = int(m.flatten().argmax())
            out[name] = {
                "sum": float(m.sum()), "max": float(m.max()), "mean": float(m.mean()),
                "argmax_yx": [k // m.shape[1], k % m.shape[1]], "seconds": round(self.seconds[name], 4),
            }  # fmt: skip
        return out


@dataclass
class Explorer:
    """The state behind one explorer page.

    Args:
        models: one or two :class:`DepthModel` s or names (two: side by side, with their agreement).
        data: a dataset or a path :func:`depthscope.open_dataset` reads (the thumbnail strip), or None.
        device: where models given by name are loaded.
        models_dir: the folders whose optimised ``.safetensors`` checkpoints the page may load
            (:meth:`compare_with`; default: the current directory).

    Example:
        >>> from depthscope.data import find_data
        >>> ex = Explorer(["meter-xxs-nyu"], find_data())
        >>> ex.select(0)
        'image_0'
        >>> panels = ex.explain("pixel:240,320", ["saliency"])
        >>> round(panels["meter-xxs-nyu"].target_depth_m, 2) > 0
        True
    """

    models: Sequence[DepthModel | str]
    data: DepthDataset | str | os.PathLike | None = None
    device: str = "cpu"
    models_dir: Sequence[str | os.PathLike] | None = None
    image: torch.Tensor | None = None
    gt: torch.Tensor | None = None
    name: str = ""
    source: str | None = None
    _preds: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        loaded = [load_model(m, device=self.device) if isinstance(m, str) else m for m in self.models]
        if not 1 <= len(loaded) <= 2:
            raise InputError(f"the explorer shows one or two models side by side, got {len(loaded)}")
        self.models = loaded
        self.by_name = {m.name: m for m in loaded}
        if len(self.by_name) != len(loaded):
            raise InputError("the two models have the same name; compare a model with another one")
        if self.data is not None and not isinstance(self.data, DepthDataset):
            self.data = open_dataset(self.data, loaded[0].info.eval.dataset)

    def compare_with(self, model: DepthModel | str | os.PathLike | None) -> list[str]:
        """Show ``model`` beside the first model, or only the first (None); returns the models shown.

        A string is what a page (or anyone reaching its HTTP API) typed, so it may only name a registered model
        or an optimised ``.safetensors`` checkpoint under :attr:`models_dir` (:func:`page_model`): never an entry
        point (``module:function`` runs code) nor an ``hf:`` folder. A refused or broken name is one clear error
        and nothing changes; a Python caller passes any :class:`DepthModel` itself."""
        first = self.models[0]
        if model in (None, ""):
            second = []
        else:
            second = [page_model(str(model), self.models_dir, self.device) if isinstance(model, str | os.PathLike)
                      else model]  # fmt: skip
            if second[0].name == first.name:
                raise InputError(f"{second[0].name} is already shown; compare with another model or checkpoint")
        self.models = [first, *second]
        self.by_name = {m.name: m for m in self.models}
        self._preds = {k: v for k, v in self._preds.items() if k in self.by_name}
        return list(self.by_name)

    # -- the image -------------------------------------------------------------------------------------------
    def select(self, index: int) -> str:
        """Show image ``index`` of the dataset; returns its name."""
        if self.data is None or not 0 <= index < len(self.data):
            raise InputError(f"image {index} is not in the dataset")
        s = self.data[index]
        return self._set(s.image, s.depth, s.name, self.data.source(index))

    def upload(self, path: str | os.PathLike) -> str:
        """Show an uploaded image file (no ground truth); a file that is not an RGB image is one clear error."""
        p = Path(path)
        image = read_image(p)
        return self._set(image, None, p.stem, str(p))

    def _set(self, image: torch.Tensor, gt: torch.Tensor | None, name: str, source: str | None) -> str:
        self.image, self.gt, self.name, self.source = image, gt, name, source
        self._preds.clear()
        return name

    def _x(self) -> torch.Tensor:
        if self.image is None:
            raise InputError("choose an image first (a thumbnail, or upload one)")
        return self.image[None].to(self.models[0].device)

    def prediction(self, model: str) -> torch.Tensor:
        """The predicted depth ``(H, W)`` in metres (cached per image)."""
        if model not in self._preds:
            with torch.no_grad():
                self._preds[model] = self.by_name[model](self._x())[0, 0].cpu()
        return self._preds[model]

    def metrics(self, model: str) -> dict[str, float]:
        """The standard metrics of the current image under ``model``'s protocol, with the boundary and binned
        groups, and normals and point-cloud metrics where the camera is known (NYU frames); empty without ground
        truth."""
        if self.gt is None:
            return {}
        m = self.by_name[model]
        e = m.info.eval
        camera = protocol_intrinsics(e.dataset, *self.gt.shape[-2:])
        groups = {"boundary": {}, "binned": {"bins": default_bins(e.max_depth)}}
        if camera is not None:
            groups |= {"normals": {}, "pointcloud": dict(DEPTH_METRICS.get("pointcloud").defaults)}
        scoring = {"min_depth": e.min_depth, "max_depth": e.max_depth, "crop": resolve_crop(None, e.dataset, m),
                   "align": "none", "output": m.preprocessing.output, "groups": groups, "intrinsics": camera}  # fmt: skip
        row = score_prediction("", self.prediction(model), self.gt, scoring)
        return {k: v for k, v in (row or {}).items() if k != "image"}

    # -- targets and maps -------------------------------------------------------------------------------------
    def target_spec(self, kind: str, y: int = 0, x: int = 0, box: str = "", q: float = 0.1, grid: int = 4,
                    cell: int = 0) -> str:  # fmt: skip
        """The ``--target`` spec of a page control: ``pixel`` (a click at row ``y``, column ``x``), ``box``
        (``"y0,x0,y1,x1"``, end-exclusive), ``mean``, ``near`` / ``far`` (fraction ``q``) or ``cell`` (cell of a
        ``grid`` x ``grid`` grid, row-major); out-of-image values are one clear error."""
        h, w = self._x().shape[-2:]
        if kind == "pixel":
            if not (0 <= y < h and 0 <= x < w):
                raise InputError(f"pixel ({y}, {x}) is outside the {h}x{w} image (the colourbar is not the image)")
            return f"pixel:{y},{x}"
        if kind == "box":
            try:
                y0, x0, y1, x1 = (int(round(float(t))) for t in box.split(","))
            except ValueError:
                raise InputError(f"box {box!r}: type y0,x0,y1,x1 in pixels, or drag on the depth map") from None
            spec = f"box:{min(y0, y1)},{min(x0, x1)},{max(y0, y1)},{max(x0, x1)}"
            parse_target(spec, h, w)  # outside the image or empty: one clear error
            return spec
        if kind in ("near", "far"):
            return f"{kind}:{q:g}"
        if kind == "cell":
            if not 0 <= cell < grid * grid:
                raise InputError(f"cell {cell} is not in a {grid}x{grid} grid (0..{grid * grid - 1})")
            return f"grid:{grid}#{cell}"
        if kind == "mean":
            return "mean"
        raise InputError(f"unknown target kind {kind!r}")

    def _weights(self, spec: str, depth: torch.Tensor) -> torch.Tensor:
        base, _, cell = spec.partition("#")
        w = parse_target(base, *depth.shape, depth)
        return w[int(cell)] if cell else w[0]

    def explain(
        self, spec: str, methods: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None,
        progress: Any = None,
    ) -> dict[str, Panel]:  # fmt: skip
        """Every chosen method's map of target ``spec`` (from :meth:`target_spec`) under each model.

        ``progress(fraction, desc)`` is called before each map, so a page can show where the time goes."""
        if not methods:
            raise InputError("choose at least one method")
        for name in methods:
            METHODS.get(name).check_options((options or {}).get(name, {}))
        panels = {}
        steps, k = len(methods) * len(self.models), 0
        for model in self.models:
            depth = self.prediction(model.name)
            weights = self._weights(spec, depth)
            maps, seconds = {}, {}
            for name in methods:
                if progress is not None:
                    progress(k / steps, desc=f"{model.name}: {name}")
                k += 1
                t0 = time.perf_counter()
                opts = (options or {}).get(name)
                maps |= explain(model, self._x(), name, weights[None], {name: opts} if opts else None)
                seconds[name] = time.perf_counter() - t0
            target_depth = float((weights * depth).sum())
            panels[model.name] = Panel(model.name, spec, maps, seconds, target_depth, weights)
        return panels

    def agreement(self, panels: Mapping[str, Panel]) -> dict[str, Any]:
        """Two models: RMSE (m) and AbsRel between their predicted depths and, per method, the Spearman
        correlation, SSIM and top-10 % IoU of their maps' magnitudes, as ``depthscope compare`` measures them
        (empty for one model)."""
        if len(panels) != 2:
            return {}
        a, b = panels.values()
        depth = depth_agreement(self.prediction(a.model), self.prediction(b.model))
        out: dict[str, Any] = {"depth_rmse_m": depth["depth_rmse"], "depth_abs_rel": depth["depth_abs_rel"]}
        for name in a.maps:
            maps = map_agreement(a.maps[name].magnitude[0], b.maps[name].magnitude[0])
            out |= {f"{name}_{k}": v for k, v in maps.items()}
        return out

    def curves(self, panels: Mapping[str, Panel], replacement: str = "blur", patch: int = 8) -> dict[str, Any]:
        """MoRF / LeRF / random curves of each current map (RMSE of the whole predicted map, m, as ``assess``
        measures: pixels ranked and perturbed within the model's evaluation crop) with both AF readings and n = 1
        image."""
        out: dict[str, Any] = {}
        for model, panel in panels.items():
            m = self.by_name[model]
            region = model_region("crop", m, *self._x().shape[-2:])
            for name, a in panel.maps.items():
                c = perturbation_curves(m, self._x(), a.magnitude[0], replacement=replacement, patch=patch,
                                        region=region)  # fmt: skip
                out[f"{model}/{name}"] = {
                    "fractions": c.fractions,
                    **{o: c.rmse[o] for o in ORDERS},
                    "af_perturbation": af_perturbation(c.rmse["morf"], c.rmse["lerf"]),
                    "af_depth_correlation": af_depth_correlation(a.magnitude[0], self.prediction(model)),
                }
        return out

    # -- what the page shows ----------------------------------------------------------------------------------
    def depth_view(self, model: str, vrange: tuple[float, float] | None = None) -> np.ndarray:
        """The predicted depth with a colourbar in metres (RGB ``(H, W + bar, 3)``; pixel (y, x) of the map is
        pixel (y, x) of this image, so a click maps to the same pixel)."""
        d = self.prediction(model).numpy()
        vmin, vmax = vrange or self.depth_range()
        return np.asarray(with_colorbar(colorize(d, vmin, vmax), vmin, vmax, "depth (m)", "magma_r",
                                        bool((d < vmin).any()), bool((d > vmax).any())))  # fmt: skip

    def depth_range(self) -> tuple[float, float]:
        """One depth scale (m) for every prediction and the ground truth shown: 1st..99th percentile of all."""
        values = [self.prediction(m.name).numpy().ravel() for m in self.models]
        if self.gt is not None:
            values.append(self.gt.numpy()[self.gt.numpy() > 0])
        return robust_range(np.concatenate(values))

    def gt_views(self, model: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Ground truth on the predictions' depth scale and the absolute-error map (m), or None."""
        if self.gt is None:
            return None
        pred, gt = self.prediction(model).numpy(), self.gt.numpy()
        vmin, vmax = self.depth_range()
        gt_rgb = with_colorbar(colorize(gt, vmin, vmax), vmin, vmax, "ground truth (m)", "magma_r")
        err = np.where(gt > 0, np.abs(pred - gt), 0)
        ehi = float(np.percentile(err[gt > 0], 99)) if (gt > 0).any() else 1.0
        err_rgb = with_colorbar(colorize(np.where(gt > 0, err + 1e-9, 0), 0, ehi, "cividis"), 0, ehi,
                                "absolute error (m)", "cividis", above=bool((err > ehi).any()))  # fmt: skip
        return np.asarray(gt_rgb), np.asarray(err_rgb)

    def maps_view(self, panels: Mapping[str, Panel]) -> np.ndarray:
        """Every map of every model side by side (models in rows), overlaid on the grey image, all on one scale:
        the share of each map's total (1 = uniform), clipped at the 99th percentile of all maps; the target
        outlined in cyan."""
        from PIL import Image, ImageDraw

        gray = self.image.mean(0).numpy()
        shares = {(p.model, n): share_of_total(a.magnitude[0].numpy()) for p in panels.values()
                  for n, a in p.maps.items()}  # fmt: skip
        hi = max(float(np.percentile(np.concatenate([s.ravel() for s in shares.values()]), 99)), 1e-6)
        rows = []
        for p in panels.values():
            tiles = []
            for n in p.maps:
                rgb = colorize(shares[(p.model, n)], 0, hi, MAGNITUDE_CMAP, mask_invalid=False).astype(np.float32)
                tile = (MAP_ALPHA * rgb + (1 - MAP_ALPHA) * 255 * gray[..., None]).astype(np.uint8)
                img = Image.fromarray(tile)
                _outline(ImageDraw.Draw(img), p.weights.numpy())
                ImageDraw.Draw(img).text((6, 4), f"{p.model}: {n}" if len(panels) > 1 else n, fill="white")
                tiles.append(np.asarray(img))
            rows.append(np.concatenate(tiles, 1))
        grid = np.concatenate(rows, 0)
        above = any(bool((s > hi).any()) for s in shares.values())
        return np.asarray(with_colorbar(grid, 0, hi, "|attribution| / uniform share", MAGNITUDE_CMAP, above=above))

    def command(self, spec: str, methods: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None = None,
                model: str | None = None) -> str:  # fmt: skip
        """The ``depthscope explain`` line that reproduces the panel of ``model`` (default: the first)."""
        m = self.by_name[model or self.models[0].name]
        base, _, cell = spec.partition("#")
        args = ["depthscope", "explain", "--model", m.info.weights if str(m.info.weights).endswith(".safetensors")
                else m.name, "--image", self.source or "IMAGE", "--methods", ",".join(methods), "--target", base]  # fmt: skip
        if cell:
            args += ["--cell", cell]
        for name, opts in (options or {}).items():
            args += [a for k, v in opts.items() for a in ("--option", f"{name}.{k}={json.dumps(v)}")]
        return shlex.join(args)

    def panel_json(self, panels: Mapping[str, Panel], methods: Sequence[str], options=None) -> dict[str, Any]:  # noqa: ANN001
        """The settings and numbers of the current panel (what "download" saves)."""
        return {
            "image": self.name, "source": self.source,
            "models": {k: {"target": p.target, "target_depth_m": p.target_depth_m, "maps": p.stats(),
                           "metrics": self.metrics(k), "weights": self.by_name[k].weights_record,
                           "command": self.command(p.target, methods, options, k)}
                       for k, p in panels.items()},
            "agreement": self.agreement(panels),
        }  # fmt: skip


def page_model(text: str, models_dir: Sequence[str | os.PathLike] | None = None, device: str = "cpu") -> DepthModel:
    """The model a page asks for by ``text``: a registered name, or an optimised ``.safetensors`` checkpoint
    inside one of ``models_dir`` (default: the current directory; symbolic links resolved first). Entry points
    (``module:function``), ``hf:`` folders and any other file are one clear error, before anything is imported
    or opened: a page's text is untrusted input.

    Example:
        >>> page_model("os:getpid")
        Traceback (most recent call last):
        depthscope.errors.InputError: the explorer loads only registered models (...) or optimised .safetensors ...
    """
    from depthscope.errors import CheckpointError
    from depthscope.models import list_models, model_config
    from depthscope.models.weights import resolve_weights

    text = text.strip()
    if text in list_models():
        source = model_config(text).weights
        if source is not None:
            try:  # on this machine already: a page never makes the server download a checkpoint
                resolve_weights(source, download=False)
            except CheckpointError:
                raise InputError(
                    f"{text}: its checkpoint is not on this machine, and the explorer never downloads "
                    f"one for a page; start it with --model {text} to fetch it first"
                ) from None
        return load_model(text, device=device)
    dirs = [Path(d).resolve() for d in (models_dir or [os.getcwd()])]
    where = ", ".join(str(d) for d in dirs)
    refusal = (f"the explorer loads only registered models ({', '.join(list_models())}) or optimised .safetensors "
               f"checkpoints under {where} (--models-dir), not {text!r}; entry points and hf: folders are typed "
               "on the command line (depthscope view --model ...)")  # fmt: skip
    if not text.endswith(".safetensors"):
        raise InputError(refusal)
    path = Path(text).resolve()
    if not any(path == d or d in path.parents for d in dirs):
        raise InputError(refusal)
    if not path.is_file():
        raise InputError(f"{text}: no such checkpoint file")
    return load_model(str(path), device=device)


def _outline(draw: Any, weights: np.ndarray) -> None:
    ys, xs = np.nonzero(weights > 0)
    if ys.size == 0 or ys.size == weights.size:
        return
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    if ys.size <= 4:  # a pixel: a cross
        draw.line([(x0 - 8, y0), (x0 + 8, y0)], fill="cyan", width=2)
        draw.line([(x0, y0 - 8), (x0, y0 + 8)], fill="cyan", width=2)
    elif ys.size == (y1 - y0 + 1) * (x1 - x0 + 1):  # a box
        draw.rectangle([x0, y0, x1, y1], outline="cyan", width=2)
    else:  # a region (near/far): its bounding box, dashed look by a thinner line
        draw.rectangle([x0, y0, x1, y1], outline="cyan", width=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()
