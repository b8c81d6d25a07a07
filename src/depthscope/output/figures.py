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

from depthscope.output.files import write_atomic  # noqa: E402


def _save(fig: plt.Figure, path: str | os.PathLike) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())


def explanation_figure(
    image: torch.Tensor,
    pred: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    gt: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """image | predicted depth (m) | ground truth (m) | one overlay per method (normalised |attribution|)."""
    panels = 2 + (gt is not None) + len(maps)
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.0), squeeze=False)
    axes = axes[0]
    img = image.detach().cpu().permute(1, 2, 0).numpy()
    axes[0].imshow(img)
    axes[0].set_title("image")
    valid = gt[gt > 0] if gt is not None else pred.flatten()
    vmin, vmax = float(valid.min()), float(valid.max())
    depth_panels = [("predicted depth", pred)] + ([("ground truth", gt)] if gt is not None else [])
    for ax, (name, d) in zip(axes[1:], depth_panels, strict=False):
        d = d.detach().cpu().numpy()
        im = ax.imshow(np.ma.masked_where(d <= 0, d), cmap="magma_r", vmin=vmin, vmax=vmax)
        ax.set_title(name)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="depth (m)")
    for ax, (name, m) in zip(axes[len(depth_panels) + 1 :], maps.items(), strict=True):
        m = m.detach().cpu().float().numpy()
        m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
        ax.imshow(img.mean(-1), cmap="gray")
        im = ax.imshow(m, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax.set_title(name)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="|attribution| (normalised)")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def curves_figure(
    curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    fractions: Sequence[float],
    path: str | os.PathLike,
    ylabel: str = "RMSE to original prediction (m)",
) -> Path:
    """One panel per method: MoRF / LeRF / random curves, mean over images with a ±1 std band."""
    methods = list(curves)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods), 3.2), squeeze=False, sharey=True)
    x = 100 * np.asarray(fractions)
    for ax, method in zip(axes[0], methods, strict=True):
        for order, colour in (("morf", "tab:red"), ("lerf", "tab:blue"), ("random", "tab:gray")):
            ys = np.asarray(curves[method].get(order, []), dtype=float)
            if ys.size == 0:
                continue
            mu, sd = ys.mean(0), ys.std(0)
            ax.plot(x, mu, color=colour, label=order_label(order))
            ax.fill_between(x, mu - sd, mu + sd, color=colour, alpha=0.15)
        ax.set_title(method)
        ax.set_xlabel("pixels perturbed (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(loc="best", fontsize=8)
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


def pareto_figure(table: Sequence[Mapping[str, Any]], x: str, y: str, path: str | os.PathLike) -> Path:
    """The rows of :func:`~depthscope.efficiency.pareto.pareto_table` (sorted by ``x``, with ``on_frontier``) as
    labelled points over ``x`` and ``y`` (lower is better), the frontier drawn as a staircase."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for r in table:
        ax.scatter(r[x], r[y], color="C3" if r["on_frontier"] else "0.5", zorder=3)
        ax.annotate(str(r["model"]), (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = [r for r in table if r["on_frontier"]]
    ax.step([r[x] for r in front], [r[y] for r in front], where="post", color="C3", label="Pareto frontier")
    ax.set_xlabel(f"{x} ({UNITS[x]})" if x in UNITS else x)
    ax.set_ylabel(f"{y} ({UNITS[y]})" if y in UNITS else y)
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
