"""The cost plan of an assessment: per image, the forwards and backwards of every method's map, every metric's
draws and every map's scores (each declared by its method or metric), their seconds (timed by running a cheaper
probe of the same phases on the run's device and first image, then scaled by the passes), and the projected wall
time. ``assess --dry-run`` prints it; every run logs it first and, at the end, planned against measured time per
phase."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from depthscope.assess.config import AssessConfig
from depthscope.errors import InputError
from depthscope.explain import METHODS
from depthscope.models import DepthModel

CHUNK_PROBE = 32  # perturbed inputs per image the forward chunk size is tuned for (31 curve inputs by default)


@dataclass
class PhaseCost:
    """One phase of an image: its model passes and its planned seconds."""

    phase: str
    forwards: int
    backwards: int
    seconds: float


@dataclass
class CostPlan:
    """What an assessment will cost: per-image phases, the timings they come from, and the whole run."""

    model: str
    images: int
    image_size: tuple[int, int]
    network_input: tuple[int, int]
    device: str
    timings: dict[str, float]
    phases: list[PhaseCost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    workers: int = 1  # images run this many at a time (the Ray engine's workers)
    most_seconds_per_image: float | None = None  # adaptive metrics at their budget: the plan's upper bound

    @property
    def seconds_per_image(self) -> float:
        return sum(p.seconds for p in self.phases)

    @property
    def seconds(self) -> float:
        """Projected wall time of the run (all images, ``workers`` at a time)."""
        return self.seconds_per_image * math.ceil(self.images / self.workers)

    def rows(self, measured: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """Table rows per phase (per image), with the measured seconds per image when given."""
        out = []
        for p in self.phases:
            row = {"phase": p.phase, "forwards": p.forwards, "backwards": p.backwards, "planned_s": p.seconds}
            if measured is not None:
                m = measured.get(p.phase)
                row |= {"measured_s": m, "measured/planned": None if m is None else m / max(p.seconds, 1e-9)}
            out.append(row)
        total = {"phase": "total per image", "forwards": sum(p.forwards for p in self.phases),
                 "backwards": sum(p.backwards for p in self.phases), "planned_s": self.seconds_per_image}  # fmt: skip
        if measured is not None:
            m = sum(measured.values())
            total |= {"measured_s": m, "measured/planned": m / max(self.seconds_per_image, 1e-9)}
        return [*out, total]

    def summary(self) -> str:
        """One line: images, passes and projected time."""
        per = self.rows()[-1]
        return (f"{self.model}: {self.images} image(s) of {self.image_size[0]}x{self.image_size[1]} (network "
                f"{self.network_input[0]}x{self.network_input[1]}) on {self.device}; per image {per['forwards']:,} "
                f"forwards and {per['backwards']:,} backwards, {self.seconds_per_image:.1f} s"
                f"{f' on each of {self.workers} workers' if self.workers > 1 else ''}; projected "
                f"{_duration(self.seconds)} for the run") + "".join(f"\n  {n}" for n in self._notes())  # fmt: skip

    def _notes(self) -> list[str]:
        """The notes, and the bound of every image drawing its budget (for the images and workers as they are)."""
        if self.most_seconds_per_image is None:
            return self.notes
        most = self.most_seconds_per_image * math.ceil(self.images / self.workers)
        return [*self.notes, f"if every image drew the budget: {self.most_seconds_per_image:.1f} s per image, "
                f"{_duration(most)} for the run"]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "images": self.images, "image_size": list(self.image_size),
                "network_input": list(self.network_input), "device": self.device, "timings_s": self.timings,
                "phases": self.rows(), "projected_s": self.seconds, "notes": self.notes, "workers": self.workers,
                "most_seconds_per_image": self.most_seconds_per_image}  # fmt: skip


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def phase_passes(
    config: AssessConfig, h: int, w: int, differentiable: bool = True, row: dict[str, Any] | None = None
) -> dict[str, tuple[int, int]]:
    """``{phase: (forwards, backwards)}`` per image of an ``h x w`` image: each metric's draws, then per method
    its map and its scores (from each method's and metric's declared cost; no model is run). ``row``: a finished
    image's results, whose draw counts an adaptive metric's draws are planned at (default: its budget)."""
    metrics = config.build_metrics()
    out: dict[str, tuple[int, int]] = {}
    for name, metric in metrics.items():
        if "draws" in (p := metric.passes(differentiable, row)):
            out[f"draws: {name}"] = p["draws"]
    scores = [metric.passes(differentiable, row).get("scores", (0, 0)) for metric in metrics.values()]
    remaps = sum(metric.remaps() for metric in metrics.values())  # maps of the scored method, per map
    for m in config.methods:
        fwd, bwd = METHODS.get(m).passes(config.method_options.get(m), h, w)
        if bwd and not differentiable:
            raise InputError(f"{m} needs gradients, which int8 kernels do not have")
        out[f"map: {m}"] = (fwd, bwd)
        out[f"scores: {m}"] = (sum(s[0] for s in scores) + remaps * fwd, sum(s[1] for s in scores) + remaps * bwd)
    return out


def probe_config(config: AssessConfig, warmup: bool = False) -> AssessConfig:
    """A cheaper config of the same phases, run once on one image to time them: the same methods, curves at 3
    fractions (10 forwards per map instead of 31), 16 draws per fixed-count Monte-Carlo metric; adaptive ones keep
    their settings, so their draws on the probe image are the run's (``warmup``: 16 draws for every metric)."""
    options = {k: dict(v) for k, v in config.metric_options.items()}
    if "curves" in config.metrics:
        options.setdefault("curves", {})["fractions"] = [0.0, 0.1, 0.2, 0.3]
    for name in config.metrics:
        mc = config.metric_config(name)
        if hasattr(mc, "n_perturbations"):
            keep = getattr(mc, "adaptive", False) and not warmup
            options.setdefault(name, {})["n_perturbations"] = mc.n_perturbations if keep else 16
    return dataclasses.replace(config, metric_options=options)


def scaled_plan(
    model: DepthModel,
    config: AssessConfig,
    x: torch.Tensor,
    images: int,
    probe_seconds: dict[str, float],
    probe_row: dict[str, Any] | None = None,
) -> CostPlan:
    """The plan of ``config`` from the seconds a :func:`probe_config` run spent per phase on image ``x``: a
    phase's seconds per model pass in the probe, times its passes in the full run (a phase without passes, such
    as the random map, takes what it took). An adaptive metric is planned at the draws it used on the probe image
    (``probe_row``, one of its results rows), which the note on the plan states."""
    h, w = x.shape[-2:]
    full = phase_passes(config, h, w, model.differentiable, probe_row)
    probe = phase_passes(probe_config(config), h, w, model.differentiable, probe_row)

    def cost(phase: str, fwd: int, bwd: int) -> float:
        seen, passes = probe_seconds.get(phase, 0.0), sum(probe[phase])
        return seen if passes == 0 or probe[phase] == (fwd, bwd) else seen / passes * (fwd + bwd)

    phases = [PhaseCost(phase, fwd, bwd, cost(phase, fwd, bwd)) for phase, (fwd, bwd) in full.items()]
    timings = {f"probe {k}": round(v, 4) for k, v in probe_seconds.items()}
    net = tuple(model.preprocessing.input_size)
    notes = []
    for name, metric in config.build_metrics().items():
        if getattr(metric, "joint", False) and probe_row is not None:
            used = probe_row[f"{metric.prefix}_n"]
            notes.append(f"{name}: adaptive, planned at the {used} draws it used on the first image (at most "
                         f"{metric.config.n_perturbations}; each image stops when its maps are resolved)")  # fmt: skip
    plan = CostPlan(model.name, images, (h, w), net, str(x.device), timings, phases, notes)
    if notes:  # the bound: every image drawing its budget
        worst = sum(cost(p, f, b) for p, (f, b) in phase_passes(config, h, w, model.differentiable).items())
        plan.most_seconds_per_image = worst
    return plan


class PhaseTimer:
    """Wall time per phase, fed the phase names ``assess_image`` announces (``on_phase``): each phase lasts until
    the next one starts or :meth:`stop`."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.images = 0
        self._phase: str | None = None
        self._t0 = 0.0

    def __call__(self, phase: str) -> None:
        self.stop()
        self._phase, self._t0 = phase, time.perf_counter()

    def stop(self) -> None:
        if self._phase is not None:
            self.totals[self._phase] = self.totals.get(self._phase, 0.0) + time.perf_counter() - self._t0
            self._phase = None

    def per_image(self) -> dict[str, float]:
        return {k: v / max(self.images, 1) for k, v in self.totals.items()}
