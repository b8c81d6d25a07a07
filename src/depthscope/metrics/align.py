"""Aligning scale-ambiguous predictions to ground truth before the metrics (relative-depth models).

All functions take the prediction and ground truth at the valid pixels only (1-D, float64; ground truth in
metres) and return the aligned prediction as depth in metres plus the fitted parameters:

* ``median``: depth ``s * p`` with ``s = median(gt) / median(p)`` (the monodepth convention);
* ``lstsq-depth``: depth ``s * p + t``, least squares against the ground-truth depth;
* ``lstsq-disparity``: disparity ``s * p + t``, least squares against ``1 / gt`` (MiDaS' protocol), then
  depth ``= 1 / max(disparity, 1 / max_depth)``.

A prediction that is a disparity (``output="disparity"``) is inverted to depth first for ``median`` and
``lstsq-depth``; a depth prediction is inverted to disparity for ``lstsq-disparity``.
"""

from __future__ import annotations

import torch

from depthscope.errors import InputError

ALIGNMENTS = ("none", "median", "lstsq-depth", "lstsq-disparity")


def _inverse(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / x.clamp_min(1e-8)


def least_squares_scale_shift(p: torch.Tensor, g: torch.Tensor) -> tuple[float, float]:
    """``(s, t)`` minimising ``sum (s p + t - g)^2`` (closed form of the 2x2 normal equations)."""
    n = p.numel()
    sp, sg, spp, spg = p.sum(), g.sum(), (p * p).sum(), (p * g).sum()
    det = n * spp - sp * sp
    if n < 2 or det.abs() < 1e-12:
        raise InputError("cannot fit scale and shift: the prediction is constant over the valid pixels")
    s = (n * spg - sp * sg) / det
    return s.item(), ((sg - s * sp) / n).item()


def align_prediction(
    p: torch.Tensor, g: torch.Tensor, method: str, output: str = "depth", max_depth: float = 10.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Aligned depth (metres) at the valid pixels and the fitted ``scale`` (and ``shift``)."""
    if method not in ALIGNMENTS:
        raise InputError(f"unknown alignment {method!r}; valid: {', '.join(ALIGNMENTS)}")
    disparity = output == "disparity"
    if method == "none":
        return (_inverse(p) if disparity else p), {}
    if method == "lstsq-disparity":
        s, t = least_squares_scale_shift(p if disparity else _inverse(p), _inverse(g))
        disp = (s * (p if disparity else _inverse(p)) + t).clamp_min(1.0 / max_depth)
        return 1.0 / disp, {"scale": s, "shift": t}
    d = _inverse(p) if disparity else p
    if method == "median":
        s = (g.median() / d.median().clamp_min(1e-12)).item()
        return s * d, {"scale": s}
    s, t = least_squares_scale_shift(d, g)
    return s * d + t, {"scale": s, "shift": t}


def apply_alignment(
    pred: torch.Tensor, method: str, fitted: dict[str, float], output: str = "depth", max_depth: float = 10.0
) -> torch.Tensor:
    """A whole prediction map (any shape) in depth metres under the ``fitted`` parameters that
    :func:`align_prediction` found on its valid pixels: what the map-level metrics (boundaries, normals, point
    clouds) see."""
    disparity = output == "disparity"
    p = pred.double()
    if method == "none":
        return _inverse(p) if disparity else p
    if method == "lstsq-disparity":
        disp = (fitted["scale"] * (p if disparity else _inverse(p)) + fitted["shift"]).clamp_min(1.0 / max_depth)
        return 1.0 / disp
    d = _inverse(p) if disparity else p
    return fitted["scale"] * d + fitted.get("shift", 0.0)
