"""Assessment metrics are registered classes: a new score is one class in one file (README, "Extending").

A metric declares its ``name``, its ``headline`` column (default: the name), ``category`` (fidelity, faithfulness, robustness...), ``higher_is_better`` for
its headline score, a ``Config`` dataclass of its options and the :class:`Column` s it writes. A dataset run
calls ``prepare`` once per image (the random draws and the model's responses to them, shared by every method's
map of that image, so methods are compared on the same draws) and ``score`` once per map; a ``joint`` metric
(adaptive draws that stop when the image's maps are resolved) scores them all at once in ``score_maps``. ``results.csv``,
``summary.csv``, the CLI's options and ``settings.json`` are all derived from the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from depthscope.config import build_config
from depthscope.errors import InputError
from depthscope.explain.attribution import Attribution
from depthscope.explain.targets import TargetModel
from depthscope.models import DepthModel
from depthscope.registry import Registry


@dataclass(frozen=True)
class Column:
    """One column a metric writes to ``results.csv``.

    Attributes:
        name: the column name.
        higher_is_better: the score's direction (None: no direction, e.g. a control's curve area).
        summarised: averaged (mean and std) in ``summary.csv``; False for counts, intervals and curves.
        unit: e.g. ``m``, ``m^2``, ``s``; empty for unitless scores.
        description: one sentence defining the score, shown beside the report's tables.
    """

    name: str
    higher_is_better: bool | None = None
    summarised: bool = True
    unit: str = ""
    description: str = ""

    @property
    def better(self) -> str:
        """``higher``, ``lower`` or ``none``: how ``summary.csv`` states the direction."""
        return {True: "higher", False: "lower", None: "none"}[self.higher_is_better]


@dataclass
class ImageContext:
    """What a metric's ``prepare`` sees of one image: the model, its whole-map mean target model ``fmodel``
    (``(B, 3, H, W)`` images -> ``(B, 1)`` metres), the image ``x`` ``(1, 3, H, W)``, the predicted depth
    ``(H, W)`` in metres, ground truth (or None), the image's ``seed``, the forward ``chunk_size`` and the
    perturbation ``region`` (bool ``(H, W)``: the pixels a perturbation metric may change; None: all).

    ``reexplain(method, x=None, model=None, target="mean")`` makes another map of a method with the run's options
    and the image's seed, for another input, model or target (robustness and randomisation metrics), with the run's
    map transform applied as to the maps being scored (meta-evaluation's disruptions)."""

    model: DepthModel
    fmodel: TargetModel
    x: torch.Tensor
    depth: torch.Tensor
    gt: torch.Tensor | None
    seed: int
    chunk_size: int | str = "auto"
    region: torch.Tensor | None = None
    reexplain: Callable[..., Attribution] | None = None

    def remap(
        self, method: str, x: torch.Tensor | None = None, model: DepthModel | None = None, target: Any = "mean"
    ) -> Attribution:
        """The map of ``method`` on input ``x`` (default: this image) under ``model`` (default: this model) for
        ``target`` (a target spec or weights ``(T, H, W)``)."""
        if self.reexplain is None:
            raise InputError(f"this image context cannot make new maps (needed to re-explain {method})")
        return self.reexplain(method, x, model, target)


@dataclass(frozen=True)
class NoOptions:
    """The config of a metric without options."""


class AssessmentMetric:
    """Base class of assessment metrics; subclass it, set the class attributes, implement :meth:`score` (and
    :meth:`prepare` when the metric draws anything per image), and decorate with :func:`register_metric`.

    Args:
        config: an instance of the metric's ``Config`` (default: its defaults).

    Example:
        >>> metric = METRICS.get("infidelity")()
        >>> metric.config.sigma, metric.higher_is_better, [c.name for c in metric.columns][:2]
        (0.01, False, ['infidelity', 'infidelity_n'])
    """

    name: ClassVar[str]
    headline: ClassVar[str | None] = None  # the column whose direction is ``higher_is_better``; default: name
    category: ClassVar[str]
    higher_is_better: ClassVar[bool | None]  # None: a reference or control, not a score with a direction
    columns: ClassVar[tuple[Column, ...]]
    Config: ClassVar[type] = NoOptions

    def __init__(self, config: Any = None) -> None:
        self.config = self.Config() if config is None else config

    @classmethod
    def configure(cls, options: dict[str, Any] | None) -> Any:
        """The metric's ``Config`` from user options (one clear error for an unknown or mistyped option)."""
        return build_config(cls.Config, options, cls.name)

    def prepare(self, ctx: ImageContext) -> Any:
        """The method-independent part for one image (draws, responses); default: the context itself."""
        return ctx

    def score(self, prepared: Any, attribution: Attribution) -> dict[str, Any]:
        """``{column: value}`` for one map (its first target) given what :meth:`prepare` returned."""
        raise NotImplementedError

    @property
    def joint(self) -> bool:
        """Whether the metric scores an image's maps together (:meth:`score_maps`, e.g. draws that stop once the
        maps' scores are resolved) instead of :meth:`prepare` once and :meth:`score` per map."""
        return False

    def score_maps(self, ctx: ImageContext, attributions: Mapping[str, Attribution]) -> dict[str, dict[str, Any]]:
        """``{method: {column: value}}`` for every map of one image; default: :meth:`prepare`, then :meth:`score`
        each map."""
        prepared = self.prepare(ctx)
        return {m: self.score(prepared, a) for m, a in attributions.items()}

    def passes(self, differentiable: bool = True, row: Mapping[str, Any] | None = None) -> dict[str, tuple[int, int]]:
        """The model passes this metric costs per image, for the cost plan: ``{"draws": (forwards, backwards)}``
        of :meth:`prepare` (or :meth:`score_maps`, once per image) and ``{"scores": ...}`` of :meth:`score` (once
        per map); ``row``, a finished image's results, tells an adaptive metric how many draws that image used.
        Default: none (a metric computed from the map and the prediction alone)."""
        return {}

    def remaps(self) -> int:
        """Maps of the scored method that scoring one map makes (robustness and randomisation metrics explain
        perturbed inputs, randomised models or other targets): the cost plan adds that many times the method's
        own passes to the map's scores. Default: none."""
        return 0


METRICS: Registry[type[AssessmentMetric]] = Registry("assessment metric")


def register_metric(cls: type[AssessmentMetric]) -> type[AssessmentMetric]:
    """Class decorator: add ``cls`` to :data:`METRICS` under ``cls.name``; its headline column must be one of its
    columns, with the direction the class declares.

    Args:
        cls: an :class:`AssessmentMetric` subclass.

    Returns:
        ``cls`` unchanged.

    Example:
        >>> @register_metric
        ... class MapMean(AssessmentMetric):
        ...     name, category, higher_is_better = "doc_map_mean", "robustness", False
        ...     columns = (Column("doc_map_mean", higher_is_better=False),)
        ...     def score(self, prepared, attribution):
        ...         return {"doc_map_mean": attribution.magnitude[0].mean().item()}
        >>> "doc_map_mean" in METRICS
        True
        >>> METRICS.unregister("doc_map_mean")
    """
    head = cls.headline or cls.name
    heads = [c for c in cls.columns if c.name == head]
    if len(heads) != 1 or heads[0].higher_is_better != cls.higher_is_better:
        raise TypeError(f"metric {cls.name!r} needs one column named {head!r} with higher_is_better="
                        f"{cls.higher_is_better}")  # fmt: skip
    if not dataclasses.is_dataclass(cls.Config):
        raise TypeError(f"metric {cls.name!r}: Config must be a dataclass")
    METRICS.register(cls.name)(cls)
    return cls
