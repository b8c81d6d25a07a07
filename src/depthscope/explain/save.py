"""Writing one image's explanation: the maps as ``.npy``, their settings as JSON, the figure, the sanity table.
The CLI's ``explain`` command and the report call this; nothing here computes a map."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthscope.errors import InputError
from depthscope.explain.api import as_batch
from depthscope.explain.attribution import Attribution
from depthscope.explain.sanity import cascading_randomization
from depthscope.explain.targets import parse_target
from depthscope.models import DepthModel
from depthscope.output.figures import explanation_figure
from depthscope.output.files import write_atomic, write_csv, write_json


def save_explanation(
    out: str | os.PathLike,
    model: DepthModel,
    image: torch.Tensor | str | os.PathLike,
    attrs: Mapping[str, Attribution],
    target: str = "mean",
    gt: torch.Tensor | None = None,
    title: str | None = None,
    cell: int = 0,
    source: str | None = None,
) -> dict[str, Path]:
    """Write ``attrs`` (from :func:`depthscope.explain`) of ``image`` to ``out``.

    Args:
        out: output directory.
        model: the model that was explained (its prediction is drawn).
        image: the image file or tensor that was explained.
        attrs: ``{method: Attribution}``.
        target: the target spec, recorded in ``explain.json`` and the figure's title.
        gt: ground-truth depth ``(H, W)`` in metres for the figure, if known.
        title: the figure's title (default: model and target).
        cell: which target of a multi-target spec the figure draws (``grid:G`` cells are row-major); every
            target is in the ``.npy`` files.
        source: where a tensor ``image`` came from (its file), recorded in ``explain.json``.

    Returns:
        The files written: ``<method>.npy`` (float32 magnitude, ``HxW``, ``TxHxW`` for several targets) and
        ``<method>_signed.npy`` per method, ``explain.png`` and ``explain.json`` (every method's settings).

    Example:
        >>> import tempfile, depthscope as ds
        >>> from depthscope.data import find_data
        >>> model, image = ds.load_model("meter-xxs-nyu"), find_data() / "image_0.png"
        >>> files = save_explanation(tempfile.mkdtemp(), model, image, ds.explain(model, image, "random"))
        >>> sorted(files)
        ['explain.json', 'explain.png', 'random.npy', 'random_signed.npy']
    """
    out = Path(out)
    x = as_batch(image, model.device)
    written: dict[str, Path] = {}
    where = source or "a tensor in memory"
    info: dict[str, Any] = {"model": model.name, "image": str(image) if not torch.is_tensor(image) else where}
    info |= {"target": target if isinstance(target, str) else "tensor", "methods": {}}
    for name, a in attrs.items():
        for suffix, arr in (("", a.magnitude), ("_signed", a.signed)):
            arr = arr[0] if arr.shape[0] == 1 else arr
            buf = io.BytesIO()
            np.save(buf, arr.cpu().numpy().astype(np.float32))
            written[f"{name}{suffix}.npy"] = write_atomic(out / f"{name}{suffix}.npy", buf.getvalue())
        info["methods"][name] = dict(a.info)
    with torch.no_grad():
        pred = model(x)[0, 0]
    n_targets = next(iter(attrs.values())).raw.shape[0] if attrs else 1
    if not 0 <= cell < n_targets:
        raise InputError(f"--cell {cell}: the target has {n_targets} cell(s), 0..{n_targets - 1}")
    weights = parse_target(target, *pred.shape, pred)[cell] if isinstance(target, str) else None
    which = f" · cell {cell} of {n_targets} (row-major)" if n_targets > 1 else ""
    info["figure_cell"] = cell
    written["explain.png"] = explanation_figure(
        x[0], pred, {n: a.magnitude[cell] for n, a in attrs.items()}, out / "explain.png", gt,
        title=title or f"{model.name} · target {info['target']}{which}",
        signed={n: a.signed[cell] for n, a in attrs.items() if bool((a.signed[cell] < 0).any())},
        target=weights,
    )  # fmt: skip
    written["explain.json"] = write_json(out / "explain.json", json.loads(json.dumps(info, default=str)))
    return written


def sanity_rows(
    model: DepthModel,
    image: torch.Tensor | str | os.PathLike,
    methods: Sequence[str],
    target: str = "mean",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    out: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Cascading model-parameter randomisation (:func:`~depthscope.explain.sanity.cascading_randomization`) of
    each method: rows ``{method, block, spearman, ssim}``, also written to ``out/sanity.csv`` when ``out``."""
    x = as_batch(image, model.device)
    options = options or {}
    rows = [
        {"method": name, **r}
        for name in methods
        for r in cascading_randomization(model, x, name, target, dict(options.get(name, {})))
    ]
    if out is not None:
        write_csv(Path(out) / "sanity.csv", rows, ["method", "block", "spearman", "ssim"])
    return rows
