"""Figures a paper can use: explanation panels and perturbation curves (matplotlib, Agg backend)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from depthscope.output.depth import robust_range  # noqa: E402
from depthscope.output.files import write_atomic  # noqa: E402


def _save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())


DEPTH_CMAP, ERROR_CMAP, MAGNITUDE_CMAP, SIGNED_CMAP = "magma_r", "cividis", "inferno", "RdBu_r"
CLIP_PERCENTILE = 99.0  # colour scales end at this percentile of the values shown; beyond it, extend arrows


def _extend(values: np.ndarray, vmin: float, vmax: float) -> str:
    """matplotlib's ``extend`` for a colourbar: arrows at the ends where shown values fall outside the scale."""
    lo, hi = bool((values < vmin).any()), bool((values > vmax).any())
    return {(True, True): "both", (True, False): "min", (False, True): "max"}.get((lo, hi), "neither")


def depth_range(*maps: np.ndarray) -> tuple[float, float]:
    """One colour scale (metres) for several depth maps: the 1st..99th percentile of all their valid pixels, so
    a far prediction beyond the ground truth's range shows as clipped (with an arrow), not as a new scale."""
    return robust_range(np.concatenate([m.ravel() for m in maps]), 100 - CLIP_PERCENTILE, CLIP_PERCENTILE)


def share_of_total(m: np.ndarray) -> np.ndarray:
    """A map divided by its mean absolute value: 1 is the share every pixel would have if attribution were
    uniform. Methods have different units (m per intensity, metres, unitless); their shares are comparable."""
    return m / max(float(np.abs(m).mean()), 1e-30)


def _outline(ax: plt.Axes, target: np.ndarray | None) -> None:
    if target is None:
        return
    inside = target > 0
    if inside.sum() <= 4:  # a pixel target: a cross on it
        ys, xs = np.nonzero(inside)
        ax.plot(xs.mean(), ys.mean(), marker="+", color="cyan", markersize=12, markeredgewidth=2)
    elif not inside.all():
        ax.contour(inside.astype(float), levels=[0.5], colors="cyan", linewidths=1.2)


def _grid(n: int, cols: int) -> list[tuple[int, int]]:
    return [(k // cols, k % cols) for k in range(n)]


def explanation_figure(
    image: torch.Tensor,
    pred: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    gt: torch.Tensor | None = None,
    title: str = "",
    signed: Mapping[str, torch.Tensor] | None = None,
    target: torch.Tensor | None = None,
    max_cols: int = 4,
) -> Path:
    """An explanation figure readable in print: a depth row, then every method's map on one shared scale.

    Rows: image (target outlined) | predicted depth | ground truth | absolute error, the depths on one scale in
    metres; then one panel per method of ``|attribution|`` as a share of the total (1 = uniform), overlaid on the
    image, all methods on one perceptual colour scale clipped at the 99th percentile; then, for the methods whose
    sign carries information (``signed``), the signed share on one diverging scale. Colourbars show extend
    arrows where values are clipped; panels wrap after ``max_cols``.

    Args:
        image: ``(3, H, W)`` in [0, 1].
        pred: predicted depth ``(H, W)`` in metres.
        maps: ``{method: |attribution| (H, W)}``.
        path: the PNG to write.
        gt: ground-truth depth ``(H, W)`` in metres (0 = invalid), if known.
        title: the figure's title.
        signed: ``{method: signed attribution (H, W)}`` for a signed row.
        target: the target's weights ``(H, W)``, outlined on the image and the maps.
        max_cols: panels per row.

    Returns:
        ``path``.
    """
    img = image.detach().cpu().permute(1, 2, 0).float().numpy()
    gray = img.mean(-1)
    pred_np = pred.detach().cpu().float().numpy()
    gt_np = None if gt is None else gt.detach().cpu().float().numpy()
    tgt = None if target is None else target.detach().cpu().float().numpy()
    mags = {k: share_of_total(v.detach().cpu().float().numpy()) for k, v in maps.items()}
    sig = {k: share_of_total(v.detach().cpu().float().numpy()) for k, v in (signed or {}).items()}
    n_depth = 2 + 2 * (gt_np is not None)
    cols = max(min(max_cols, max(len(mags), len(sig), 1)), n_depth)
    rows_of = lambda n: -(-n // cols)  # noqa: E731
    n_rows = 1 + rows_of(len(mags)) + rows_of(len(sig))
    aspect = img.shape[0] / img.shape[1]
    fig, axes = plt.subplots(
        n_rows, cols, figsize=(3.3 * cols + 0.9, 3.3 * aspect * n_rows + 0.7), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.set_axis_off()
    top = axes[0]
    top[0].imshow(img)
    _outline(top[0], tgt)
    top[0].set_title("image" + (" (target outlined)" if tgt is not None and not (tgt > 0).all() else ""), fontsize=9)
    shown = [pred_np] + ([gt_np] if gt_np is not None else [])
    vmin, vmax = depth_range(*shown)
    depth_axes = []
    names = ("predicted depth", "ground truth")[: len(shown)]
    for ax, name, d in zip(top[1 : 1 + len(shown)], names, shown, strict=True):
        im = ax.imshow(np.ma.masked_where(d <= 0, d), cmap=DEPTH_CMAP, vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=9)
        depth_axes.append(ax)
    all_depth = np.concatenate([d[d > 0].ravel() for d in shown])
    fig.colorbar(im, ax=depth_axes, label="depth (m)", extend=_extend(all_depth, vmin, vmax), shrink=0.9)
    if gt_np is not None:
        valid = gt_np > 0
        err = np.where(valid, np.abs(pred_np - gt_np), np.nan)
        ehi = float(np.nanpercentile(err, CLIP_PERCENTILE)) if valid.any() else 1.0
        im = top[3].imshow(err, cmap=ERROR_CMAP, vmin=0, vmax=max(ehi, 1e-6))
        top[3].set_title("|prediction - ground truth|", fontsize=9)
        fig.colorbar(im, ax=top[3], label="absolute error (m)", extend=_extend(err[valid], 0, ehi), shrink=0.9)
    for group, kind in ((mags, "magnitude"), (sig, "signed")):
        if not group:
            continue
        first = 1 + (rows_of(len(mags)) if kind == "signed" else 0)
        values = np.concatenate([v.ravel() for v in group.values()])
        if kind == "magnitude":
            lo, hi, cmap = 0.0, float(np.percentile(values, CLIP_PERCENTILE)), MAGNITUDE_CMAP
            label = "|attribution| / uniform share"
        else:
            hi = float(np.percentile(np.abs(values), CLIP_PERCENTILE))
            lo, cmap, label = -hi, SIGNED_CMAP, "signed attribution / mean |share|"
        hi = max(hi, 1e-6)
        used = []
        for (r, c), (name, m) in zip(_grid(len(group), cols), group.items(), strict=True):
            ax = axes[first + r][c]
            ax.imshow(gray, cmap="gray")
            im = ax.imshow(m, cmap=cmap, vmin=lo if kind == "signed" else 0, vmax=hi, alpha=0.75)
            _outline(ax, tgt)
            ax.set_title(f"{name}{' (signed)' if kind == 'signed' else ''}", fontsize=9)
            used.append(ax)
        fig.colorbar(im, ax=used, label=label, extend=_extend(values, lo, hi), shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def compare_figure(
    image: torch.Tensor,
    maps_a: Mapping[str, torch.Tensor],
    maps_b: Mapping[str, torch.Tensor],
    names: tuple[str, str],
    path: str | os.PathLike,
) -> Path:
    """Two models' maps of one image, one row per method: A | B | B - A, each map as its share of the total (1 =
    uniform), so maps of different scales are comparable. A and B of a row share one colour scale, clipped at the
    99th percentile; the difference has a symmetric diverging scale.

    Args:
        image: ``(3, H, W)`` in [0, 1].
        maps_a: ``{method: |attribution| (H, W)}`` of model A.
        maps_b: the same methods' maps of model B.
        names: the two models' names.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    gray = image.detach().cpu().float().mean(0).numpy()
    methods = list(maps_a)
    aspect = gray.shape[0] / gray.shape[1]
    fig, axes = plt.subplots(len(methods), 3, figsize=(11.5, 3.3 * aspect * len(methods) + 0.6), squeeze=False,
                             layout="constrained")  # fmt: skip
    for r, method in enumerate(methods):
        a, b = (share_of_total(m[method].detach().cpu().float().numpy()) for m in (maps_a, maps_b))
        hi = max(float(np.percentile(np.concatenate([a.ravel(), b.ravel()]), CLIP_PERCENTILE)), 1e-6)
        diff = b - a
        dhi = max(float(np.percentile(np.abs(diff), CLIP_PERCENTILE)), 1e-6)
        for c, (m, title) in enumerate(((a, f"A = {names[0]}"), (b, f"B = {names[1]}"))):
            axes[r][c].imshow(gray, cmap="gray")
            im = axes[r][c].imshow(m, cmap=MAGNITUDE_CMAP, vmin=0, vmax=hi, alpha=0.75)
            axes[r][c].set_title(f"{method}: {title}", fontsize=9)
        fig.colorbar(im, ax=axes[r][:2].tolist(), label="|attribution| / uniform share", shrink=0.9,
                     extend=_extend(np.concatenate([a.ravel(), b.ravel()]), 0, hi))  # fmt: skip
        im = axes[r][2].imshow(diff, cmap=SIGNED_CMAP, vmin=-dhi, vmax=dhi)
        axes[r][2].set_title(f"{method}: B - A", fontsize=9)
        fig.colorbar(im, ax=axes[r][2], label="share difference", extend=_extend(diff, -dhi, dhi), shrink=0.9)
        for ax in axes[r]:
            ax.set_axis_off()
    return _save(fig, path)


def gallery_figure(
    rows: Sequence[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]], path: str | os.PathLike
) -> Path:
    """Per image (name, image, prediction, ground truth): image | prediction | ground truth | absolute error.
    Every depth panel of every image shares one scale in metres, every error panel one scale."""
    preds = [p.detach().cpu().float().numpy() for _, _, p, _ in rows]
    gts = [None if g is None else g.detach().cpu().float().numpy() for _, _, _, g in rows]
    vmin, vmax = depth_range(*preds, *(g for g in gts if g is not None))
    errs = [None if g is None else np.where(g > 0, np.abs(p - g), np.nan) for p, g in zip(preds, gts, strict=True)]
    known = [e[np.isfinite(e)] for e in errs if e is not None]
    ehi = max(float(np.percentile(np.concatenate(known), CLIP_PERCENTILE)), 1e-6) if known else 1.0
    h, w = rows[0][1].shape[-2:]
    fig, axes = plt.subplots(
        len(rows), 4, figsize=(13.5, 13.5 / 4 * h / w * len(rows) + 0.6), squeeze=False, layout="constrained"
    )
    depth_im = err_im = None
    for r, ((name, image, _, _), p, g, e) in enumerate(zip(rows, preds, gts, errs, strict=True)):
        axes[r][0].imshow(image.detach().cpu().permute(1, 2, 0).numpy())
        axes[r][0].set_ylabel(name, fontsize=9)
        depth_im = axes[r][1].imshow(p, cmap=DEPTH_CMAP, vmin=vmin, vmax=vmax)
        if g is not None:
            axes[r][2].imshow(np.ma.masked_where(g <= 0, g), cmap=DEPTH_CMAP, vmin=vmin, vmax=vmax)
            err_im = axes[r][3].imshow(e, cmap=ERROR_CMAP, vmin=0, vmax=ehi)
        for c, label in enumerate(("image", "predicted depth", "ground truth", "absolute error")):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if g is None and c >= 2:
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title(label, fontsize=10)
    shown = np.concatenate([p.ravel() for p in preds] + [g[g > 0] for g in gts if g is not None])
    fig.colorbar(depth_im, ax=axes[:, 1:3], label="depth (m)", extend=_extend(shown, vmin, vmax), shrink=0.6)
    if err_im is not None:
        fig.colorbar(err_im, ax=axes[:, 3], label="absolute error (m)", extend=_extend(np.concatenate(known), 0, ehi),
                     shrink=0.6)  # fmt: skip
    return _save(fig, path)


def curves_figure(
    curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    fractions: Sequence[float],
    path: str | os.PathLike,
    ylabel: str = "RMSE to original prediction (m)",
    notes: Mapping[str, str] | None = None,
    control: str = "random",
) -> Path:
    """One panel per method: MoRF / LeRF / random-order curves, mean over images with a ±1 std band; each
    panel's title gives n (images) and its note (e.g. the AF score), and the ``control`` method's is marked."""
    methods = list(curves)
    cols = min(len(methods), 4)
    n_rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(
        n_rows, cols, figsize=(3.6 * cols, 3.1 * n_rows + 0.3), squeeze=False, sharey=True, layout="constrained"
    )
    for ax in axes.flat[len(methods) :]:
        ax.set_axis_off()
    x = 100 * np.asarray(fractions)
    for ax, method in zip(axes.flat, methods, strict=False):
        n = 0
        for order, colour in (("morf", "tab:red"), ("lerf", "tab:blue"), ("random", "tab:gray")):
            ys = np.asarray(curves[method].get(order, []), dtype=float)
            if ys.size == 0:
                continue
            n = len(ys)
            mu, sd = ys.mean(0), ys.std(0)
            ax.plot(x, mu, color=colour, label=order_label(order) + (" order" if order == "random" else ""))
            ax.fill_between(x, mu - sd, mu + sd, color=colour, alpha=0.15)
        is_control = method.split("/")[-1] == control
        head = f"{method} (control)" if is_control else method
        ax.set_title(f"{head}\n{(notes or {}).get(method, '')}{', ' if notes and method in notes else ''}n = {n}",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("pixels perturbed (%)")
        ax.grid(alpha=0.3)
    for r in range(n_rows):
        axes[r][0].set_ylabel(ylabel)
    axes.flat[0].legend(loc="best", fontsize=8)
    return _save(fig, path)


UNITS = {
    "rmse": "m",
    "mae": "m",
    "latency_ms_median": "ms",
    "latency_ms_p90": "ms",
    "flops": "FLOPs",
    "macs": "MACs",
    "params": "parameters",
    "peak_memory_bytes": "bytes",
    "param_bytes": "bytes",
}


def pareto_figure(
    table: Sequence[Mapping[str, Any]], x: str, y: str, path: str | os.PathLike, higher: frozenset[str] = frozenset()
) -> Path:
    """The rows of :func:`~depthscope.efficiency.pareto.pareto_table` (sorted by ``x``, with ``on_frontier``) as
    labelled points over ``x`` and ``y``, the frontier drawn as a staircase; the axes say which way is better
    (``higher``: the metrics where larger is better, the others lower)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in table:
        ax.scatter(r[x], r[y], color="C3" if r["on_frontier"] else "0.5", zorder=3)
        ax.annotate(str(r["model"]), (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = [r for r in table if r["on_frontier"]]
    where = "pre" if x in higher else "post"  # the step runs along the better side of each frontier point
    ax.step([r[x] for r in front], [r[y] for r in front], where=where, color="C3", label="Pareto frontier")
    for setter, key in ((ax.set_xlabel, x), (ax.set_ylabel, y)):
        better = "higher" if key in higher else "lower"
        setter(f"{key} ({UNITS[key]}; {better} is better)" if key in UNITS else f"{key} ({better} is better)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def perturbation_figure(
    image: torch.Tensor,
    depth: torch.Tensor,
    views: Mapping[str, Mapping[str, tuple[torch.Tensor, torch.Tensor]]],
    fractions: Sequence[float],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """The paper's figure: per method, one row for MoRF and one for LeRF, each with the perturbed image and the
    predicted depth at every fraction; the first column holds the original image and its depth, and every depth
    panel shares one colour scale (metres, shown once)."""
    rows = [(m, o) for m in views for o in ("morf", "lerf")]
    cols = 1 + 2 * len(fractions)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(1.9 * cols + 0.8, 1.45 * len(rows) + 0.5), squeeze=False, constrained_layout=True
    )
    vmax = float(max(depth.max(), *(v[o][1].max() for v in views.values() for o in ("morf", "lerf"))))
    im = None
    for r, (method, order) in enumerate(rows):
        imgs, deps = views[method][order]
        panels = [(image if r % 2 == 0 else depth, "original" if r == 0 else "")]
        for k, f in enumerate(fractions):
            panels += [(imgs[k], f"{order_label(order)} {100 * f:.0f} %"), (deps[k], "depth")]
        for c, (arr, label) in enumerate(panels):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if arr.dim() == 3:
                ax.imshow(arr.permute(1, 2, 0).clamp(0, 1).cpu().numpy())
            else:
                im = ax.imshow(arr.cpu().numpy(), cmap="magma_r", vmin=0, vmax=vmax)
            if r < 2 or c == 0:
                ax.set_title(label, fontsize=7)
        axes[r][0].set_ylabel(f"{method}\n{order_label(order)}", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes[:, -1], shrink=0.5, label="depth (m)", location="right")
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def order_label(order: str) -> str:
    """MoRF / LeRF / random, spelled as in the paper."""
    return {"morf": "MoRF", "lerf": "LeRF"}.get(order, order)


def corruptions_figure(
    panels: Sequence[tuple[str, torch.Tensor, torch.Tensor]], path: str | os.PathLike, title: str = ""
) -> Path:
    """One column per (label, image, predicted depth): the corrupted image above its predicted depth, every
    depth on one scale in metres (the first panel is usually the clean image)."""
    preds = [p.detach().cpu().float().numpy() for _, _, p in panels]
    vmin, vmax = depth_range(*preds)
    h, w = panels[0][1].shape[-2:]
    n = len(panels)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 2.6 * 2 * h / w + 0.8), squeeze=False, layout="constrained")
    im = None
    for c, (label, image, _) in enumerate(panels):
        axes[0][c].imshow(image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        axes[0][c].set_title(label, fontsize=9)
        im = axes[1][c].imshow(preds[c], cmap=DEPTH_CMAP, vmin=vmin, vmax=vmax)
        for r in (0, 1):
            axes[r][c].set_xticks([]), axes[r][c].set_yticks([])
    axes[0][0].set_ylabel("image", fontsize=9)
    axes[1][0].set_ylabel("predicted depth", fontsize=9)
    fig.colorbar(im, ax=axes[1, :], label="depth (m)", shrink=0.8, location="bottom",
                 extend=_extend(np.concatenate([p.ravel() for p in preds]), vmin, vmax))  # fmt: skip
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
