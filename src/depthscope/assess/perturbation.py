"""Perturbation curves (SPEC §4): replace the most (MoRF), least (LeRF) or randomly chosen relevant pixels
and measure how far the predicted depth map moves. All perturbed images of one image run as batches."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from depthscope.errors import InputError
from depthscope.ops.batching import ChunkBuffer, predict_chunks
from depthscope.ops.fills import fill_image, inpaint_fill, linear_imputation
from depthscope.ops.stats import descending_ranks
from depthscope.seeding import generator

if TYPE_CHECKING:
    from depthscope.models import DepthModel

DEFAULT_FRACTIONS = tuple(round(0.05 * i, 2) for i in range(11))  # 0, 5, ..., 50 %
ORDERS = ("morf", "lerf", "random")


def _expand_patches(prank: torch.Tensor, patch: int, h: int, w: int) -> torch.Tensor:
    """Patch ranks ``(gh, gw)`` -> pixel ranks ``(h, w)`` counted in pixels (patch rank x patch area)."""
    if patch == 1:
        return prank.float()
    out = prank.float() * patch * patch
    return out.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:h, :w]


def rank_map(score: torch.Tensor, patch: int = 1) -> torch.Tensor:
    """``(H, W)`` rank of each pixel by descending ``score`` (0 = most relevant; ties by position); with
    ``patch > 1`` pixels share their patch's rank (patches ranked by mean score), counted in pixels so fractions
    stay fractions."""
    h, w = score.shape
    s = F.avg_pool2d(score[None, None].float(), patch, ceil_mode=True)[0, 0] if patch > 1 else score
    return _expand_patches(descending_ranks(s), patch, h, w)


def reversed_rank(rank: torch.Tensor, patch: int = 1) -> torch.Tensor:
    """The LeRF ranks of a :func:`rank_map` result: least relevant first (one sort serves both orders)."""
    h, w = rank.shape
    n_patches = math.ceil(h / patch) * math.ceil(w / patch)
    return (n_patches - 1) * patch * patch - rank


def random_rank(h: int, w: int, patch: int = 1, gen: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random order of the pixels (or patches), as ranks like :func:`rank_map`'s."""
    gh, gw = math.ceil(h / patch), math.ceil(w / patch)
    return _expand_patches(torch.randperm(gh * gw, generator=gen).view(gh, gw), patch, h, w)


def order_ranks(
    score: torch.Tensor, patch: int = 1, seed: int = 0, region: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The rank maps of the three orders (``ORDERS``): MoRF from ``score`` ``(H, W)``, LeRF its reverse, and a
    random order from ``seed``'s own stream. With ``region`` (a bool ``(H, W)`` mask), only its pixels are ranked
    (:func:`region_ranks`); the others get an infinite rank and are never perturbed."""
    if region is not None:
        return region_ranks(score, region, patch, seed)
    morf = rank_map(score, patch)
    rand = random_rank(*score.shape, patch, generator(seed, "random_order")).to(score)
    return {"morf": morf, "lerf": reversed_rank(morf, patch), "random": rand}


def region_ranks(score: torch.Tensor, region: torch.Tensor, patch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    """MoRF, LeRF and random ranks of the pixels of ``region`` only, counted in region pixels.

    Patches (``patch`` x ``patch`` squares of the image grid) with at least one region pixel are ranked by the mean
    score of their region pixels; a pixel's rank is the number of region pixels in the patches ranked before its
    own, so ``rank < f * region.sum()`` selects whole patches until a share ``f`` of the region is covered. Pixels
    outside the region get ``inf``: no order ever perturbs them.

    Example:
        >>> score = torch.arange(16.0).view(4, 4)
        >>> region = torch.zeros(4, 4, dtype=torch.bool); region[1:3, 1:3] = True
        >>> region_ranks(score, region)["morf"][1:3, 1:3].tolist()
        [[3.0, 2.0], [1.0, 0.0]]
    """
    h, w = score.shape
    if tuple(region.shape) != (h, w):
        raise InputError(f"perturbation region {tuple(region.shape)} does not match the map {(h, w)}")
    inside = region.to(score.device, torch.float32)
    if patch > 1:
        count = F.avg_pool2d(inside[None, None], patch, ceil_mode=True, divisor_override=1)[0, 0]
        total = F.avg_pool2d((score * inside)[None, None].float(), patch, ceil_mode=True, divisor_override=1)[0, 0]
    else:
        count, total = inside, score.float() * inside
    used = count > 0
    mean = torch.where(used, total / count.clamp_min(1), torch.zeros_like(total)).flatten()
    cells = used.flatten().nonzero().squeeze(1)
    morf = cells[descending_ranks(mean[cells]).argsort()]  # most relevant first
    gen = generator(seed, "random_order")
    orders = {"morf": morf, "lerf": morf.flip(0), "random": cells[torch.randperm(cells.numel(), generator=gen)]}
    out = {}
    for name, order in orders.items():
        before = torch.full((count.numel(),), math.inf, device=score.device)
        c = count.flatten()[order]
        before[order] = torch.cumsum(c, 0) - c  # region pixels in the patches ranked earlier
        cell_rank = before.view(count.shape)
        pixel = cell_rank.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:h, :w] if patch > 1 else cell_rank
        out[name] = torch.where(region.to(score.device), pixel, torch.full_like(pixel, math.inf)).to(score.dtype)
    return out


def parse_region(spec: str | None) -> str | tuple[int, int, int, int]:
    """``full`` (also for None), ``crop``, or the box ``(x0, y0, x1, y1)`` a ``--perturb-region`` names; a
    malformed one is one clear error (its bounds are checked against each image by :func:`region_mask`)."""
    if spec in (None, "full", "crop"):
        return spec or "full"
    try:
        x0, y0, x1, y1 = (int(t) for t in str(spec).split(","))
    except ValueError:
        raise InputError(f"--perturb-region takes full, crop or x0,y0,x1,y1 (pixels), got {spec!r}") from None
    return x0, y0, x1, y1


def region_mask(spec: str | None, h: int, w: int, crop: str = "none") -> torch.Tensor | None:
    """The pixels perturbation metrics may perturb, from ``spec``: ``full`` or None (every pixel: None),
    ``crop`` (the evaluation ``crop`` of the model's protocol: Eigen on NYU, which leaves NYU's white frame out;
    Garg/Eigen on KITTI), or ``x0,y0,x1,y1`` (a box in pixels, end-exclusive). An empty box, or one reaching
    outside the ``h`` x ``w`` image, is one clear error.

    Example:
        >>> m = region_mask("crop", 480, 640, "eigen")
        >>> int(m.sum()), bool(m[44, 320]), bool(m[45, 320])
        (238560, False, True)
    """
    box = parse_region(spec)
    if box == "full":
        return None
    if box == "crop":
        from depthscope.metrics.depth import crop_mask

        return None if crop == "none" else crop_mask(h, w, crop)
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InputError(f"--perturb-region {spec}: the box must be non-empty and inside the {w}x{h} image "
                         "(x0,y0,x1,y1 in pixels, end-exclusive)")  # fmt: skip
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def model_region(spec: str | None, model: DepthModel, h: int, w: int) -> torch.Tensor | None:
    """:func:`region_mask` of an ``h`` x ``w`` image for ``model``: ``crop`` is the evaluation crop of its protocol
    (what ``assess``, the explorer's curves and the protocol study perturb by default)."""
    from depthscope.metrics.evaluate import resolve_crop

    return region_mask(spec, h, w, resolve_crop(None, model.info.eval.dataset, model))


def fragmentation(ranks: torch.Tensor, fractions: Sequence[float], n_pixels: int | None = None) -> list[float]:
    """How fragmented the perturbed set is at each fraction: its boundary length over its area, i.e. the edges
    between a perturbed pixel and a 4-neighbour left alone, per perturbed pixel (the image border not counted;
    0 for an empty set). One 8x8 patch inside the image: 32 / 64 = 0.5; isolated pixels: 4. The set of fraction
    ``f`` is ``ranks < f * n_pixels`` (default ``H * W``), as :func:`perturbed_batch` makes it.

    Example:
        >>> r = torch.full((16, 16), float("inf")); r[:8, :8] = 0  # an 8x8 patch in a corner: 16 inner edges
        >>> fragmentation(r, [0.0, 0.25])
        [0.0, 0.25]
    """
    n = ranks.numel() if n_pixels is None else n_pixels
    masks = ranks[None] < torch.tensor([f * n for f in fractions], device=ranks.device).view(-1, 1, 1)
    edges = (masks[:, 1:] != masks[:, :-1]).sum((1, 2)) + (masks[:, :, 1:] != masks[:, :, :-1]).sum((1, 2))
    area = masks.sum((1, 2))
    return (edges.double() / area.clamp_min(1).double()).tolist()


@dataclass
class Curves:
    """Distances (metres for RMSE) of perturbed predictions from the original, per order and fraction, and how
    fragmented each order's perturbed set is (:func:`fragmentation`)."""

    fractions: list[float]
    rmse: dict[str, list[float]]
    abs_rel: dict[str, list[float]]
    gt_rmse_change: dict[str, list[float]] = field(default_factory=dict)
    fragmentation: dict[str, list[float]] = field(default_factory=dict)

    def auc(self, order: str, metric: str = "rmse") -> float:
        """Area under the curve over the fraction range, divided by that range (the curve's mean height)."""
        y = np.asarray(getattr(self, metric)[order])
        x = np.asarray(self.fractions)
        return float(np.trapezoid(y, x) / (x[-1] - x[0]))


Fill = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]  # an image, or masks (K, 1, H, W) -> one fill each


def replacement_fill(x: torch.Tensor, replacement: str = "mean", seed: int = 0) -> Fill:
    """What perturbed pixels of ``x`` become: a fill image (``mean``, ``black``, ``blur``, ``noise``) or, for
    ``inpaint`` and ``linear`` (ROAD's noisy linear imputation), the function of the masks that fills each from
    its unperturbed surroundings."""
    if replacement == "inpaint":
        return lambda masks: inpaint_fill(x, masks)
    if replacement == "linear":
        return lambda masks: linear_imputation(x, masks, seed=seed)
    return fill_image(x, replacement, seed, "replacement_noise", what="replacement")


def perturbed_batch(
    x: torch.Tensor,
    ranks: Sequence[torch.Tensor],
    fractions: Sequence[float],
    replacement: Fill,
    out: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    n_pixels: int | None = None,
) -> torch.Tensor:
    """Perturbed images ``(K, 3, H, W)``: in image ``k``, pixels with ``ranks[k] < fractions[k] * n_pixels`` (default
    ``H * W``; a perturbation region's pixel count when ranks are counted within it) are
    replaced by ``replacement`` (an image, or a function of the masks ``(K, 1, H, W)`` giving one fill per mask). ``out`` and ``mask`` ``(K, 1, H, W)`` (optional) are reused as storage. Each mask
    is written straight into ``x``'s dtype from its own rank map (no gathered copy of the maps, no bool pass):
    2x faster than comparing a gathered ``(K, H, W)`` stack."""
    n = x.shape[-2] * x.shape[-1] if n_pixels is None else n_pixels
    if mask is None:
        mask = torch.empty(len(ranks), 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
    for j, (r, f) in enumerate(zip(ranks, fractions, strict=True)):
        torch.lt(r, f * n, out=mask[j, 0])
    fill = replacement(mask) if callable(replacement) else replacement
    return replace_masked(x, mask, fill, out)


def replace_masked(
    x: torch.Tensor, masks: torch.Tensor, replacement: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``(K, 3, H, W)``: ``replacement`` where ``masks`` ``(K, 1, H, W)`` is set, ``x`` elsewhere (exactly: lerp
    with weight 0 or 1, several times faster than ``torch.where`` with broadcast masks on CPU)."""
    return torch.lerp(x, replacement, masks.to(x.dtype), out=out)  # x (1, ...) and one or K fills broadcast


@torch.no_grad()
def perturbation_curves(
    model: torch.nn.Module,
    x: torch.Tensor,
    score: torch.Tensor,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    replacement: str = "mean",
    patch: int = 1,
    seed: int = 0,
    gt: torch.Tensor | None = None,
    chunk_size: int | str = "auto",
    region: torch.Tensor | None = None,
    orders: Sequence[str] = ORDERS,
) -> Curves:
    """MoRF/LeRF/random curves for image ``x`` ``(1,3,H,W)`` and relevance ``score`` ``(H,W)`` (magnitude).

    ``region`` (bool ``(H, W)``, :func:`region_mask`): only its pixels are ranked and perturbed, and fractions
    are shares of the region (None: the whole image). ``orders``: which of :data:`ORDERS` to run (ROAD and
    insertion/deletion need no random order).

    ``replacement``: ``mean`` (default), ``black``, ``blur``, ``noise`` or ``inpaint`` (the perturbed region
    filled from its unperturbed surroundings, :func:`~depthscope.ops.fills.inpaint_fill`).

    Distance at fraction ``k``: RMSE (m) and AbsRel between the original and the perturbed prediction over
    pixels with a prediction; with ``gt`` (m), also the change of RMSE against ground truth. The perturbed images
    are built and run ``chunk_size`` at a time, by default the fastest measured (one batch of all of them is
    slower on a 2-core CPU; see benchmarks/assess_speed.py).
    """
    if tuple(score.shape) != tuple(x.shape[-2:]):
        raise InputError(f"attribution map {tuple(score.shape)} does not match the image {tuple(x.shape[-2:])}")
    if not torch.isfinite(score).all():
        raise InputError("attribution map contains NaN or Inf")
    fractions = [float(f) for f in fractions]
    unknown = sorted(set(orders) - set(ORDERS))
    if unknown or not orders:
        raise InputError(f"unknown curve orders {unknown or 'none'}; valid: {', '.join(ORDERS)}")
    ranks = {o: r for o, r in order_ranks(score, patch, seed, region).items() if o in orders}
    n_pixels = None if region is None else int(region.sum())
    # Fraction 0 perturbs nothing: one unperturbed image (entry 0) gives ``ref`` for every order; the other
    # fractions run (3 x 10 by default), each chunk of perturbed images built just before its forward.
    moved = [j for j, f in enumerate(fractions) if f > 0]
    rank_of = [next(iter(ranks.values()))] + [r for r in ranks.values() for _ in moved]  # entry 0: nothing replaced
    fraction_of = [0.0] + [fractions[j] for j in moved] * len(ranks)
    rep = replacement_fill(x, replacement, seed)
    buf, mask_buf = ChunkBuffer(x), ChunkBuffer(x[:, :1])

    def make(s: slice) -> torch.Tensor:
        k = len(rank_of[s])
        return perturbed_batch(x, rank_of[s], fraction_of[s], rep, buf(k), mask_buf(k), n_pixels)

    d = predict_chunks(model, len(rank_of), make, chunk_size, _Distances(gt))[1:].view(len(ranks), len(moved), -1)
    table = torch.zeros(len(ranks), len(fractions), d.shape[-1])  # fraction 0: the prediction is ref, distance 0
    table[:, moved] = d.cpu()
    per_order = {
        name: {o: table[i, :, j].tolist() for i, o in enumerate(ranks)}
        for j, name in enumerate(_Distances.COLUMNS[: d.shape[-1]])
    }
    curves = Curves(fractions, per_order["rmse"], per_order["abs_rel"])
    curves.fragmentation = {o: fragmentation(r, fractions, n_pixels) for o, r in ranks.items()}
    if gt is not None:
        curves.gt_rmse_change = per_order["gt_rmse_change"]
    return curves


class _Distances:
    """``reduce`` for :func:`predict_chunks`: the distances of each perturbed prediction from the first one
    (``ref``, the unperturbed image): RMSE (m), AbsRel and, with ``gt``, the change of RMSE against ground truth,
    over pixels where ``ref`` has a prediction (and ``gt`` a value)."""

    COLUMNS = ("rmse", "abs_rel", "gt_rmse_change")

    def __init__(self, gt: torch.Tensor | None) -> None:
        self.gt = gt

    def __call__(self, s: slice, out: torch.Tensor) -> torch.Tensor:
        pred = out[:, 0]
        if s.start == 0:
            ref = pred[0]
            self.valid = None if bool((ref > 0).all()) else ref > 0
            self.ref = self._pick(ref).clone()
            self.inv_ref = 1 / (self.ref * self.ref.numel())  # AbsRel as one dot product
            if self.gt is not None:
                gt = self._pick(self.gt.to(ref))
                self.gt_valid = gt > 0
                self.gt_ref = gt[self.gt_valid]
                self.base = _rms(self.ref[self.gt_valid] - self.gt_ref)
        pred = self._pick(pred)
        diff = pred - self.ref
        cols = [_rms(diff), diff.abs_() @ self.inv_ref]
        if self.gt is not None:
            cols.append(_rms(pred[:, self.gt_valid] - self.gt_ref) - self.base)
        return torch.stack(cols, dim=-1)

    def _pick(self, maps: torch.Tensor) -> torch.Tensor:
        """``(..., H, W)`` -> ``(..., P)``: the pixels where ``ref`` has a prediction."""
        return maps.flatten(-2) if self.valid is None else maps[..., self.valid]


def _rms(v: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last dimension (one fused reduction)."""
    return torch.linalg.vector_norm(v, dim=-1) / v.shape[-1] ** 0.5


@torch.no_grad()
def perturbed_views(
    model: torch.nn.Module,
    x: torch.Tensor,
    score: torch.Tensor,
    fractions: Sequence[float] = (0.1, 0.3, 0.5),
    replacement: str = "mean",
    patch: int = 1,
    seed: int = 0,
    region: torch.Tensor | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What the curves feed the model, to look at: per order (``morf``, ``lerf``), the perturbed images
    ``(K, 3, H, W)`` at ``fractions`` and the model's depth on them ``(K, H, W)`` in metres (the paper's figure)."""
    ranks = order_ranks(score, patch, seed, region)
    rep = replacement_fill(x, replacement, seed)
    n_pixels = None if region is None else int(region.sum())
    out = {}
    for order in ("morf", "lerf"):
        images = perturbed_batch(x, [ranks[order]] * len(fractions), list(fractions), rep, n_pixels=n_pixels)
        out[order] = (images, model(images)[:, 0])
    return out
