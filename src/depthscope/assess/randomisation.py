"""Randomisation metrics (Quantus' ``randomisation`` family for dense targets) and the target-region share: does a
method's map depend on what the model learned and on which depth it explains?

- ``mprt``: Model Parameter Randomisation Test (Adebayo et al. 2018), cascading from the output: the network's
  blocks are re-initialised a share at a time and each map compared with the original (Spearman of magnitudes).
- ``smooth_mprt``: the same on maps averaged over noisy copies of the input (Hedström et al. 2023, sMPRT), which
  removes the gradient noise that makes unrelated maps look alike.
- ``efficient_mprt``: the relative rise of the map's discrete entropy once every block is randomised (Hedström et
  al. 2023, eMPRT): one new map instead of one per layer.
- ``random_target``: the map of the whole-map mean against the map of one random cell of a grid (Sixt et al.'s
  random-logit test for a dense target): a map that does not change with the target explains no target.
- ``target_share``: for each cell of a grid as the target, the share of the map's magnitude inside that cell: how
  much a map relies on context outside the depth it explains (no library reports it; a description, no direction).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from depthscope.assess.registry import AssessmentMetric, Column, ImageContext, register_metric
from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution
from depthscope.explain.sanity import blocks_in_forward_order, reinit_block
from depthscope.explain.targets import grid_target
from depthscope.models import DepthModel
from depthscope.ops.stats import map_ssim, spearman
from depthscope.seeding import generator, stream_seed


def randomised_cascade(
    model: DepthModel, x: torch.Tensor, steps: int, seed: int = 0, first: int | None = None
) -> list[DepthModel]:
    """Copies of ``model`` with its blocks (:func:`~depthscope.explain.sanity.blocks_in_forward_order`)
    re-initialised from the output towards the input: copy ``k`` of ``steps`` has the last ``ceil(k B / steps)`` of
    its ``B`` blocks randomised (the last copy: all of them), each block with its own seed. ``first``: only the
    first copies (e.g. 1 of 2 steps: the output half randomised)."""
    blocks = list(reversed(blocks_in_forward_order(model, x)))
    if not blocks:
        raise InputError(f"{model.name} has no blocks with parameters to randomise")
    last = steps if first is None else min(first, steps)
    out, rand, done = [], copy.deepcopy(model).eval(), 0
    for k in range(1, last + 1):
        upto = math.ceil(k * len(blocks) / steps)
        for i in range(done, upto):
            reinit_block(rand.net.get_submodule(blocks[i]), stream_seed(seed, f"mprt_{i}"))
        done = upto
        out.append(rand if k == last else copy.deepcopy(rand).eval())  # the last copy is the working one
    return out


def discrete_entropy(a: torch.Tensor, n_bins: int = 100) -> float:
    """Entropy (nats) of the histogram of ``a``'s values in ``n_bins`` equal bins (Quantus ``discrete_entropy``).

    Example:
        >>> round(discrete_entropy(torch.arange(100.0), n_bins=100), 4) == round(math.log(100), 4)
        True
    """
    hist, _ = np.histogram(a.detach().double().cpu().numpy().ravel(), bins=n_bins)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log(p)).sum())


@dataclass
class Randomised:
    """One image's randomised models, with the context new maps are made in."""

    ctx: ImageContext
    models: list[DepthModel]


@dataclass(frozen=True)
class MprtConfig:
    steps: int = field(default=3, metadata={"help": "cascade steps: shares of the blocks randomised, top first"})
    n_noise: int = field(default=1, metadata={"help": "noisy copies each map is averaged over (1: the plain map)"})
    noise: float = field(default=0.02, metadata={"help": "std of the copies' Gaussian noise, [0, 1] pixel range"})
    metric_name: ClassVar[str] = "mprt"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.n_noise < 1 or not 0 <= self.noise <= 1:
            raise InputError(f"{self.metric_name} needs steps >= 1, n_noise >= 1 and noise in [0, 1], got "
                             f"{self.steps}, {self.n_noise}, {self.noise}")  # fmt: skip


class CascadeMetric(AssessmentMetric):
    """A metric over maps of randomised copies of the model (built once per image, shared by every method)."""

    category = "randomisation"

    def prepare(self, ctx: ImageContext) -> Randomised:
        return Randomised(ctx, randomised_cascade(ctx.model, ctx.x, self.config.steps, ctx.seed))

    def smoothed(self, ctx: ImageContext, method: str, model: DepthModel | None) -> torch.Tensor:
        """The magnitude map ``(H, W)`` of ``method`` under ``model``, averaged over ``n_noise`` noisy inputs
        (the image itself when ``n_noise`` is 1)."""
        c = self.config
        if c.n_noise == 1:
            return ctx.remap(method, model=model).magnitude[0]
        g = generator(ctx.seed, "smooth_mprt")
        total = torch.zeros(ctx.x.shape[-2:], dtype=torch.float64)
        for _ in range(c.n_noise):
            xn = (ctx.x + c.noise * torch.randn(ctx.x.shape, generator=g).to(ctx.x)).clamp(0, 1)
            total += ctx.remap(method, x=xn, model=model).magnitude[0].double().cpu()
        return (total / c.n_noise).to(ctx.x.dtype)

    def remaps(self) -> int:
        c = self.config
        return c.n_noise * (c.steps + (1 if c.n_noise > 1 else 0))  # smoothed: the original map is remade too

    def passes(self, differentiable: bool = True, row: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
        return {"draws": (1, 0)}  # one forward to order the blocks


@register_metric
class Mprt(CascadeMetric):
    """Cascading Model Parameter Randomisation Test: Spearman of the map with each randomised copy's."""

    name = "mprt"
    higher_is_better = False
    Config = MprtConfig
    columns = (
        Column("mprt", higher_is_better=False,
               description="MPRT (Adebayo et al. 2018): mean over the cascade steps (blocks re-initialised from the "
               "output) of the Spearman correlation of the map with the randomised model's map; lower: the map "
               "depends on the learned weights"),
        Column("mprt_full", higher_is_better=False,
               description="the Spearman correlation once every block is randomised"),
        Column("mprt_curve", summarised=False),
    )  # fmt: skip

    def score(self, prepared: Randomised, attribution: Attribution) -> dict[str, Any]:
        ctx, method = prepared.ctx, attribution.method
        base = attribution.magnitude[0] if self.config.n_noise == 1 else self.smoothed(ctx, method, None)
        sims = [spearman(base, self.smoothed(ctx, method, m)) for m in prepared.models]
        head = self.headline or self.name
        return {head: float(np.mean(sims)), f"{self.name}_full": sims[-1],
                f"{self.name}_curve": json.dumps([round(s, 6) for s in sims])}  # fmt: skip


@dataclass(frozen=True)
class SmoothMprtConfig(MprtConfig):
    steps: int = field(default=1, metadata={"help": "cascade steps (1: every block at once)"})
    n_noise: int = field(default=4, metadata={"help": "noisy copies each map is averaged over"})
    metric_name: ClassVar[str] = "smooth_mprt"


@register_metric
class SmoothMprt(Mprt):
    """Smooth MPRT (Hedström et al. 2023): MPRT on maps averaged over noisy copies of the input."""

    name = "smooth_mprt"
    Config = SmoothMprtConfig
    columns = (
        Column("smooth_mprt", higher_is_better=False,
               description="sMPRT (Hedström et al. 2023): MPRT on maps averaged over noisy copies of the input "
               "(Spearman; lower is better)"),
        Column("smooth_mprt_full", higher_is_better=False, description="the same once every block is randomised"),
        Column("smooth_mprt_curve", summarised=False),
    )  # fmt: skip


@dataclass(frozen=True)
class EfficientMprtConfig:
    n_bins: int = field(default=100, metadata={"help": "histogram bins of the discrete entropy"})

    def __post_init__(self) -> None:
        if self.n_bins < 2:
            raise InputError(f"efficient_mprt_n_bins must be >= 2, got {self.n_bins}")


@register_metric
class EfficientMprt(CascadeMetric):
    """Efficient MPRT (Hedström et al. 2023): the relative rise of the map's discrete entropy once every block is
    randomised."""

    name = "efficient_mprt"
    higher_is_better = True
    Config = EfficientMprtConfig
    columns = (
        Column("efficient_mprt", higher_is_better=True,
               description="eMPRT (Hedström et al. 2023): (H(a_random) - H(a)) / H(a), H the entropy of the map's "
               "100-bin histogram, a_random the map of the fully randomised model; higher: randomising the model "
               "makes the map noisier"),
    )  # fmt: skip

    def prepare(self, ctx: ImageContext) -> Randomised:
        return Randomised(ctx, randomised_cascade(ctx.model, ctx.x, 1, ctx.seed))

    def score(self, prepared: Randomised, attribution: Attribution) -> dict[str, Any]:
        before = discrete_entropy(attribution.magnitude[0], self.config.n_bins)
        after = discrete_entropy(prepared.ctx.remap(attribution.method, model=prepared.models[-1]).magnitude[0],
                                 self.config.n_bins)  # fmt: skip
        return {"efficient_mprt": (after - before) / before if before > 0 else float("nan")}

    def remaps(self) -> int:
        return 1


@dataclass(frozen=True)
class GridConfig:
    grid: int = field(default=4, metadata={"help": "the target cells: a grid x grid split of the image"})
    metric_name: ClassVar[str] = "random_target"

    def __post_init__(self) -> None:
        if self.grid < 2:
            raise InputError(f"{self.metric_name}_grid must be >= 2 (a cell, not the whole image), got {self.grid}")


@register_metric
class RandomTarget(AssessmentMetric):
    """The random-target test: the map of the whole-map mean against the map of one random grid cell's mean."""

    name = "random_target"
    category = "randomisation"
    higher_is_better = False
    Config = GridConfig
    columns = (
        Column("random_target", higher_is_better=False,
               description="SSIM of the map of the mean depth with the map of the mean depth of one random cell of a "
               "4x4 grid (Sixt et al.'s random-logit test for a dense target); lower: the map follows the target"),
        Column("random_target_spearman", higher_is_better=False, description="Spearman correlation of the same maps"),
        Column("random_target_cell", summarised=False),
    )  # fmt: skip

    def prepare(self, ctx: ImageContext) -> tuple[ImageContext, int]:
        g = self.config.grid
        return ctx, int(torch.randint(g * g, (1,), generator=generator(ctx.seed, "random_target")))

    def score(self, prepared: tuple[ImageContext, int], attribution: Attribution) -> dict[str, Any]:
        ctx, cell = prepared
        h, w = ctx.x.shape[-2:]
        weights = grid_target(h, w, self.config.grid)[cell : cell + 1].to(ctx.x)
        other = ctx.remap(attribution.method, target=weights).magnitude[0]
        a = attribution.magnitude[0]
        return {"random_target": map_ssim(a, other), "random_target_spearman": spearman(a, other),
                "random_target_cell": cell}  # fmt: skip

    def remaps(self) -> int:
        return 1


@dataclass(frozen=True)
class ShareConfig(GridConfig):
    grid: int = field(default=2, metadata={"help": "the target cells: a grid x grid split of the image"})
    metric_name: ClassVar[str] = "target_share"


@register_metric
class TargetShare(AssessmentMetric):
    """For each cell of a grid as the target, the share of the map's magnitude inside that cell."""

    name = "target_share"
    category = "localisation"
    higher_is_better = None  # a description of the model and method: depth may well be read from context
    Config = ShareConfig
    columns = (
        Column("target_share", higher_is_better=None,
               description="mean over the cells of a 2x2 grid, each the target, of the share of the map's magnitude "
               "inside the cell; 1: the map of a region's depth lies in that region, the cell's area share: "
               "no preference"),
        Column("target_share_ratio", higher_is_better=None,
               description="target_share over the cells' mean area share (1: relevance is spread as if the target "
               "did not matter)"),
    )  # fmt: skip

    def score(self, ctx: ImageContext, attribution: Attribution) -> dict[str, Any]:
        h, w = ctx.x.shape[-2:]
        cells = grid_target(h, w, self.config.grid).to(ctx.x)
        maps = ctx.remap(attribution.method, target=cells).magnitude.double()  # (T, H, W)
        inside = cells > 0
        share = [float(maps[t][inside[t]].sum() / maps[t].sum().clamp_min(1e-300)) for t in range(len(cells))]
        area = [float(inside[t].double().mean()) for t in range(len(cells))]
        return {"target_share": float(np.mean(share)), "target_share_ratio": float(np.mean(share) / np.mean(area))}

    def remaps(self) -> int:
        return self.config.grid**2  # one map per cell target (a gradient method: one backward each)
