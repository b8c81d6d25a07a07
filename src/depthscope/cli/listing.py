"""``depthscope list``: what is registered (timm's ``list_models``, for every registry)."""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Callable
from typing import Any

from depthscope.cli._base import Command, register_command
from depthscope.registry import Registry


def _models() -> list[dict[str, str]]:
    from depthscope.models.registry import MODELS

    out = []
    for n in MODELS.names():
        c = MODELS.get(n).config
        out.append({"name": n, "weights": "published" if c.weights is not None else "none (random init)",
                    "protocol": c.eval.dataset, "description": c.description})  # fmt: skip
    return out


def _methods() -> list[dict[str, str]]:
    from depthscope.explain import METHODS

    return [{"name": n, "needs gradients": "yes" if METHODS.get(n).needs_grad else "no",
             "description": METHODS.get(n).description} for n in METHODS.names()]  # fmt: skip


def _metrics() -> list[dict[str, str]]:
    from depthscope.assess.registry import METRICS

    better = {True: "higher", False: "lower", None: "none"}
    return [{"name": n, "category": METRICS.get(n).category, "better": better[METRICS.get(n).higher_is_better],
             "description": (METRICS.get(n).__doc__ or "").split("\n")[0]} for n in METRICS.names()]  # fmt: skip


def _depth_metrics() -> list[dict[str, str]]:
    from depthscope.metrics import DEPTH_METRICS

    rows = [
        {"name": "standard", "needs": "", "description": "MAE, RMSE, RMSE log, AbsRel, SqRel, log10, SILog, delta1-3"}
    ]
    return rows + [{"name": n, "needs": ", ".join(DEPTH_METRICS.get(n).needs), "description":
                    DEPTH_METRICS.get(n).description} for n in DEPTH_METRICS.names()]  # fmt: skip


def _datasets() -> list[dict[str, str]]:
    from depthscope.data import DATASETS

    rows = [{"name": "nyu", "description": "NYU Depth V2: image_<id>/depth_<id> pairs (mm) or the labeled .mat"},
            {"name": "kitti", "description": "KITTI: pairs (value / 256) or a root with an Eigen split file"},
            {"name": "pairs", "description": "any image/depth pairs: a folder or a CSV"}]  # fmt: skip
    return rows + [{"name": n, "description": DATASETS.get(n).description} for n in DATASETS.names()]


def _named(
    registry_of: Callable[[], Registry[Any]], describe: Callable[[Registry[Any], str], str]
) -> Callable[[], list[dict[str, str]]]:
    def rows() -> list[dict[str, str]]:
        reg = registry_of()
        return [{"name": n, "description": describe(reg, n)} for n in reg.names()]

    return rows


def _probes_registry() -> Registry[Any]:
    from depthscope.probe import PROBES

    return PROBES


def _corruptions_registry() -> Registry[Any]:
    from depthscope.ops.corruptions import CORRUPTIONS

    return CORRUPTIONS


def _tests_registry() -> Registry[Any]:
    from depthscope.meta import TESTS

    return TESTS


LISTINGS: dict[str, Callable[[], list[dict[str, str]]]] = {
    "models": _models,
    "methods": _methods,
    "metrics": _metrics,
    "depth-metrics": _depth_metrics,
    "datasets": _datasets,
    "probes": _named(_probes_registry, lambda r, n: f"{r.get(n).kind}: {r.get(n).description}"),
    "corruptions": _named(_corruptions_registry, lambda r, n: (r.get(n).__doc__ or "ImageNet-C").split("\n")[0]),
    "tests": _named(_tests_registry, lambda r, n: f"{r.get(n).kind}: {r.get(n).description}"),
}


def listing(what: str, pattern: str | None = None) -> list[dict[str, str]]:
    """The rows of ``depthscope list WHAT [PATTERN]``: every registered entry (shell-style ``pattern`` on names)."""
    from depthscope.errors import InputError

    if what not in LISTINGS:
        raise InputError(f"unknown listing {what!r}; valid: {', '.join(LISTINGS)}")
    rows = LISTINGS[what]()
    return [r for r in rows if pattern is None or fnmatch.fnmatch(r["name"], pattern)]


@register_command
class List(Command):
    """What is registered: models (with whether a published checkpoint exists), attribution methods, assessment
    metrics (category, direction), depth metric groups, datasets, shortcut probes, corruptions, meta-evaluation
    tests. PATTERN filters names shell-style (e.g. 'meter-*', '*mprt').

    Example: depthscope list models 'meter-*'
    """

    name = "list"
    help = "what is registered: models, methods, metrics, depth-metrics, datasets, probes, corruptions, tests"

    def configure(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("what", choices=list(LISTINGS), help="which registry")
        p.add_argument("pattern", nargs="?", help="shell-style filter on names (default: all)")

    def run(self, args: argparse.Namespace) -> int:
        from depthscope.output.tables import format_table

        rows = listing(args.what, args.pattern)
        print(format_table(rows) if rows else f"no {args.what} match {args.pattern!r}")
        return 0
