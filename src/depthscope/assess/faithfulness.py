"""The faithfulness metrics of Quantus for dense targets, beside ``curves`` and the Faithfulness Correlation: ROAD
(MoRF and LeRF under noisy linear imputation), Insertion/Deletion, Monotonicity Correlation and IROF. Each ranks
within the perturbation region and perturbs nothing outside it, as the curves do; the scalar a metric needs is the
whole-map mean depth (metres), and the distance a curve records is the RMSE (metres) between the perturbed and
the original prediction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from depthscope.assess.fidelity import af_perturbation
from depthscope.assess.metrics import CurveMetric, check_curve_protocol
from depthscope.assess.perturbation import DEFAULT_FRACTIONS, Curves, region_ranks
from depthscope.assess.registry import AssessmentMetric, Column, ImageContext, register_metric
from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution
from depthscope.ops.batching import ChunkBuffer, predict_chunks
from depthscope.ops.fills import FILLS, fill_image

FULL_RANGE = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 10, ..., 100 %: insertion needs the whole range


@dataclass(frozen=True)
class RoadConfig:
    fractions: tuple[float, ...] = field(
        default=DEFAULT_FRACTIONS, metadata={"help": "fractions of the region removed"}
    )
    patch: int = field(default=8, metadata={"help": "removal granularity in pixels"})
    replacement: str = field(default="linear", metadata={"help": "ROAD's noisy linear imputation (fixed)"})

    def __post_init__(self) -> None:
        check_curve_protocol("road", self.fractions, self.replacement, self.patch)
        if self.replacement != "linear":
            raise InputError(
                "road_replacement is ROAD's noisy linear imputation ('linear'); for other fills use curves"
            )


@register_metric
class Road(CurveMetric):
    """ROAD (Rong et al., ICML 2022): MoRF and LeRF curves where removed pixels are filled by noisy linear
    imputation from their neighbours (:func:`~depthscope.ops.fills.linear_imputation`), so the fill does not
    reveal the removed set's shape; read as Attribution Fidelity."""

    name = "road"
    orders = ("morf", "lerf")
    category = "faithfulness"
    higher_is_better = True
    Config = RoadConfig
    columns = (
        Column("road", higher_is_better=True,
               description="ROAD (Rong et al. 2022): Attribution Fidelity (d_MoRF - d_LeRF) / (d_MoRF + d_LeRF) of "
               "the curves with removed pixels linearly imputed from their neighbours, plus noise (std 0.01)"),
        Column("road_morf_auc", higher_is_better=True, unit="m",
               description="ROAD's MoRF curve: RMSE to the original prediction, averaged over the fractions"),
        Column("road_lerf_auc", higher_is_better=False, unit="m", description="ROAD's LeRF curve, as road_morf_auc"),
    )  # fmt: skip

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        curves = self.curves(ctx, attribution.magnitude[0])
        return {"road": af_perturbation(curves.rmse["morf"], curves.rmse["lerf"]),
                "road_morf_auc": curves.auc("morf"), "road_lerf_auc": curves.auc("lerf")}  # fmt: skip


@dataclass(frozen=True)
class InsertionDeletionConfig:
    fractions: tuple[float, ...] = field(
        default=FULL_RANGE, metadata={"help": "fractions of the region, symmetric about 0.5, from 0 to 1"}
    )
    replacement: str = field(default="blur", metadata={"help": "the baseline pixels are deleted to / inserted into"})
    patch: int = field(default=8, metadata={"help": "granularity in pixels"})

    def __post_init__(self) -> None:
        check_curve_protocol("insertion_deletion", self.fractions, self.replacement, self.patch)
        f = np.asarray(self.fractions)
        if f[-1] != 1 or not np.allclose(np.sort(1 - f), f):
            raise InputError(f"insertion_deletion_fractions must run from 0 to 1 symmetrically (each f with 1 - f), "
                             f"got {list(self.fractions)}")  # fmt: skip


def insertion_deletion(curves: Curves) -> dict[str, float]:
    """Insertion and deletion areas of the curves over the whole region (fractions 0..1, symmetric), each
    normalised by the distance of the fully replaced region ``D`` (the same for every order):

    - ``deletion_auc``: mean of ``d_MoRF(f) / D``, the prediction leaving the original as the most relevant pixels
      are deleted first (Petsiuk et al. 2018's deletion, as a distance: higher is better);
    - ``insertion_auc``: mean of ``1 - d_ins(k) / D``, the prediction coming back as the most relevant pixels are
      inserted first into the baseline. The baseline with the top share ``k`` inserted is the image with the least
      relevant ``1 - k`` replaced, so ``d_ins(k) = d_LeRF(1 - k)`` and no extra forward is needed.

    Example:
        >>> c = Curves([0.0, 0.5, 1.0], {"morf": [0.0, 1.0, 1.0], "lerf": [0.0, 0.0, 1.0]}, {})
        >>> insertion_deletion(c)
        {'deletion_auc': 0.75, 'insertion_auc': 0.75, 'insertion_deletion': 0.5}
    """
    full = curves.rmse["morf"][-1]
    if not full > 0:
        return {"deletion_auc": 0.0, "insertion_auc": 0.0, "insertion_deletion": 0.0}  # the region moves nothing
    deletion = curves.auc("morf") / full
    insertion = 1 - curves.auc("lerf") / full  # the trapezoid of d_LeRF over f equals that of d_ins over k = 1 - f
    return {"deletion_auc": deletion, "insertion_auc": insertion, "insertion_deletion": deletion + insertion - 1}


@register_metric
class InsertionDeletion(CurveMetric):
    """Insertion and Deletion (Petsiuk et al., BMVC 2018) over the whole region, from one set of curves."""

    name = "insertion_deletion"
    orders = ("morf", "lerf")
    category = "faithfulness"
    higher_is_better = True
    Config = InsertionDeletionConfig
    columns = (
        Column("insertion_deletion", higher_is_better=True,
               description="deletion_auc + insertion_auc - 1 in [-1, 1]: 0 for a map whose order carries nothing"),
        Column("deletion_auc", higher_is_better=True,
               description="mean over the fractions of the RMSE to the prediction with the most relevant pixels "
               "deleted (blurred) first, over that with the whole region deleted"),
        Column("insertion_auc", higher_is_better=True,
               description="mean over the fractions of 1 - RMSE to the prediction with the most relevant pixels "
               "inserted into the blurred region first, over that of the fully blurred region"),
    )  # fmt: skip

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        return insertion_deletion(self.curves(ctx, attribution.magnitude[0]))


def _lerf_cells(score: torch.Tensor, region: torch.Tensor | None, patch: int) -> tuple[torch.Tensor, int]:
    """The LeRF rank of every pixel (in region pixels; ``inf`` outside) and the region's pixel count."""
    region = torch.ones_like(score, dtype=torch.bool) if region is None else region.to(score.device)
    return region_ranks(score, region, patch)["lerf"], int(region.sum())


@torch.no_grad()
def monotonicity_correlation(
    fmodel: torch.nn.Module,
    x: torch.Tensor,
    score: torch.Tensor,
    region: torch.Tensor | None = None,
    patch: int = 8,
    n_steps: int = 20,
    n_samples: int = 4,
    replacement: str = "noise",
    seed: int = 0,
    chunk_size: int | str = "auto",
) -> tuple[float, list[float], list[float]]:
    """Monotonicity Correlation (Nguyen & Martinez 2020; Quantus ``MonotonicityCorrelation``) of relevance
    ``score`` ``(H, W)``: the region's patches, least relevant first, split into ``n_steps`` groups; each group
    alone is replaced (``n_samples`` times for a ``noise`` fill, each its own draw; once for a fixed fill) and the
    target's mean squared change ``var_g`` (over ``y^2``) recorded; the score is Spearman's correlation of the
    groups' relevance sums with ``var_g``: 1 when more relevant groups always move the target more.

    Returns:
        ``(correlation, relevance sums, variances)``.
    """
    ranks, n = _lerf_cells(score, region, patch)
    if n_steps > math.ceil(n / patch**2):
        raise InputError(f"monotonicity_correlation_n_steps {n_steps} exceeds the region's {math.ceil(n / patch**2)} "
                         f"patches of {patch} px")  # fmt: skip
    bounds = [round(n * g / n_steps) for g in range(n_steps + 1)]
    group = torch.full_like(ranks, -1, dtype=torch.long)
    for g in range(n_steps):
        group[(ranks >= bounds[g]) & (ranks < bounds[g + 1])] = g  # whole patches: a patch's pixels share its rank
    masks = torch.stack([(group == g) for g in range(n_steps)]).unsqueeze(1).to(x.dtype)  # (G, 1, H, W)
    atts = [float((score.double() * (group == g)).sum()) for g in range(n_steps)]
    draws = n_samples if replacement == "noise" else 1
    fills = [fill_image(x, replacement, seed, f"monotonicity_noise_{s}", what="replacement") for s in range(draws)]
    buf = ChunkBuffer(x)

    def make(s: slice) -> torch.Tensor:
        idx = range(s.start, s.stop)
        out = buf(len(idx))
        for j, i in enumerate(idx):
            g, d = divmod(i, draws)
            torch.lerp(x[0], fills[d][0], masks[g], out=out[j])
        return out

    y = fmodel(x)[0, 0].double()
    ys = predict_chunks(fmodel, n_steps * draws, make, chunk_size)[:, 0].double().view(n_steps, draws)
    inv = 1.0 / float(y.abs()) ** 2 if float(y.abs()) >= 1e-5 else 1.0
    variances = (((ys - y) ** 2).mean(1) * inv).tolist()
    r = spearmanr(atts, variances).statistic
    return (0.0 if not np.isfinite(r) else float(r)), atts, variances


@dataclass(frozen=True)
class MonotonicityConfig:
    patch: int = field(default=8, metadata={"help": "side of the squares grouped into steps, in pixels"})
    n_steps: int = field(default=20, metadata={"help": "groups of patches, least relevant first (one forward each)"})
    n_samples: int = field(default=4, metadata={"help": "noise draws per group (noise fill only)"})
    replacement: str = field(default="noise", metadata={"help": f"fill of a group: {', '.join(FILLS)}"})

    def __post_init__(self) -> None:
        if self.patch < 1 or self.n_steps < 3 or self.n_samples < 1:
            raise InputError("monotonicity_correlation needs patch >= 1, n_steps >= 3 and n_samples >= 1, got "
                             f"{self.patch}, {self.n_steps}, {self.n_samples}")  # fmt: skip
        if self.replacement not in FILLS:
            raise InputError(
                f"unknown monotonicity_correlation_replacement {self.replacement!r}; valid: {', '.join(FILLS)}"
            )


@register_metric
class MonotonicityCorrelation(AssessmentMetric):
    """Monotonicity Correlation (:func:`monotonicity_correlation`) of the map's magnitude."""

    name = "monotonicity_correlation"
    category = "faithfulness"
    higher_is_better = True
    Config = MonotonicityConfig
    columns = (
        Column("monotonicity_correlation", higher_is_better=True,
               description="Monotonicity Correlation (Nguyen & Martinez 2020, Quantus): Spearman correlation of each "
               "patch group's relevance with the mean squared change of the target when that group alone is "
               "replaced by noise"),
    )  # fmt: skip

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        c = self.config
        r, _, _ = monotonicity_correlation(ctx.fmodel, ctx.x, attribution.magnitude[0], ctx.region, c.patch,
                                           c.n_steps, c.n_samples, c.replacement, ctx.seed, ctx.chunk_size)  # fmt: skip
        return {"monotonicity_correlation": r}

    def passes(self, differentiable: bool = True, row: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
        c = self.config
        return {"scores": (1 + c.n_steps * (c.n_samples if c.replacement == "noise" else 1), 0)}


def superpixels(x: torch.Tensor, n_segments: int = 50, compactness: float = 10.0) -> torch.Tensor:
    """SLIC superpixels of image ``x`` ``(1, 3, H, W)`` (scikit-image), as labels ``(H, W)`` from 0."""
    try:
        from skimage.segmentation import slic
    except ImportError:
        raise InputError("irof needs scikit-image for its superpixels: pip install 'depthscope[skimage]'") from None
    image = x[0].permute(1, 2, 0).detach().cpu().double().numpy()
    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)
    return torch.from_numpy(np.unique(labels, return_inverse=True)[1].reshape(labels.shape)).to(x.device)


@torch.no_grad()
def segment_curves(
    model: torch.nn.Module,
    x: torch.Tensor,
    score: torch.Tensor,
    segments: torch.Tensor,
    region: torch.Tensor | None = None,
    replacement: str = "mean",
    chunk_size: int | str = "auto",
) -> dict[str, list[float]]:
    """IROF's curves: the region's part of each segment ranked by the mean of ``score`` there, then removed one
    more at a time (most relevant first for ``morf``, least for ``lerf``); RMSE (m) of each prediction to the
    original, from 0 segments removed to all."""
    inside = torch.ones_like(score, dtype=torch.bool) if region is None else region.to(score.device)
    labels = torch.where(inside, segments, torch.full_like(segments, -1))
    ids = [int(i) for i in torch.unique(labels) if i >= 0]
    means = torch.tensor([float(score[labels == i].double().mean()) for i in ids])
    order = [ids[i] for i in torch.sort(means, descending=True, stable=True).indices.tolist()]
    fill = fill_image(x, replacement, what="replacement")
    buf = ChunkBuffer(x)
    steps = {"morf": order, "lerf": order[::-1]}
    cumulative = []
    for seq in steps.values():
        removed = torch.zeros_like(score, dtype=x.dtype)
        for i in seq:
            removed = removed + (labels == i).to(x.dtype)
            cumulative.append(removed)
    ref = model(x)[0, 0]

    def make(s: slice) -> torch.Tensor:
        return torch.lerp(x, fill, torch.stack(cumulative[s])[:, None], out=buf(s.stop - s.start))

    def rmse(s: slice, out: torch.Tensor) -> torch.Tensor:
        return ((out[:, 0] - ref) ** 2).flatten(1).mean(1).sqrt()

    d = predict_chunks(model, len(cumulative), make, chunk_size, rmse).cpu().tolist()
    k = len(order)
    return {"morf": [0.0, *d[:k]], "lerf": [0.0, *d[k:]]}


@dataclass(frozen=True)
class IrofConfig:
    n_segments: int = field(default=50, metadata={"help": "SLIC superpixels asked for (scikit-image)"})
    replacement: str = field(default="mean", metadata={"help": f"fill of a removed segment: {', '.join(FILLS)}"})

    def __post_init__(self) -> None:
        if self.n_segments < 2:
            raise InputError(f"irof_n_segments must be >= 2, got {self.n_segments}")
        if self.replacement not in FILLS:
            raise InputError(f"unknown irof_replacement {self.replacement!r}; valid: {', '.join(FILLS)}")


def irof_area(curve: list[float]) -> float:
    """The mean of a segment curve over its last value (the region fully removed), steps 1..S: Quantus' area over
    the curve, with the distance to the original prediction in place of the class score's fall (0 when nothing
    moves).

    Example:
        >>> irof_area([0.0, 1.0, 1.0]), irof_area([0.0, 0.0, 1.0])
        (1.0, 0.5)
    """
    full = curve[-1]
    return float(np.mean(curve[1:]) / full) if full > 0 else 0.0


@register_metric
class Irof(AssessmentMetric):
    """Iterative Removal of Features (Rieger & Hansen 2020; Quantus ``IROF``) on SLIC superpixels inside the region."""

    name = "irof"
    category = "faithfulness"
    higher_is_better = True
    Config = IrofConfig
    columns = (
        Column("irof", higher_is_better=True,
               description="IROF (Rieger & Hansen 2020): mean over k of the RMSE to the original prediction with the "
               "k most relevant superpixels removed, over that with all removed (higher: relevant segments first)"),
        Column("irof_lerf", higher_is_better=False,
               description="the same with the least relevant superpixels removed first (a reference: lower is better)"),
        Column("irof_segments", summarised=False),
    )  # fmt: skip

    def prepare(self, ctx: ImageContext) -> tuple[ImageContext, torch.Tensor]:
        return ctx, superpixels(ctx.x, self.config.n_segments)

    def score(self, prepared: tuple[ImageContext, torch.Tensor], attribution: Attribution) -> dict[str, Any]:
        ctx, segments = prepared
        curves = segment_curves(ctx.model, ctx.x, attribution.magnitude[0], segments, ctx.region,
                                self.config.replacement, ctx.chunk_size)  # fmt: skip
        return {"irof": irof_area(curves["morf"]), "irof_lerf": irof_area(curves["lerf"]),
                "irof_segments": len(curves["morf"]) - 1}  # fmt: skip

    def passes(self, differentiable: bool = True, row: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
        n = int(row["irof_segments"]) if row is not None and row.get("irof_segments") else self.config.n_segments
        return {"scores": (1 + 2 * n, 0)}
