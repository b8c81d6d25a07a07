"""depthscope: evaluate, explain and profile monocular depth estimation models.

``load_model`` / ``wrap`` give a :class:`DepthModel` (images in [0, 1] -> metric depth in metres); ``predict``,
``evaluate``, ``explain``, ``assess``, ``compare``, ``profile``, ``pareto`` and ``report`` are the Python API behind the CLI
commands of the same names. Extension points: ``register_model`` (with a ``ModelConfig``), ``register_method``, ``register_metric``.
"""

import importlib
import sys
import types
from typing import Any

# Imported on first use (PEP 562): ``import depthscope`` stays light (the command line answers Ctrl-C during
# start-up, and importing the package starts no torch work); every name below is where it always was.
_WHERE = {
    "METRICS": "depthscope.assess", "AssessConfig": "depthscope.assess", "AssessmentMetric": "depthscope.assess",
    "assess": "depthscope.assess", "register_metric": "depthscope.assess", "compare": "depthscope.compare",
    "open_dataset": "depthscope.data", "pareto": "depthscope.efficiency", "profile": "depthscope.efficiency",
    "METHODS": "depthscope.explain", "explain": "depthscope.explain", "register_method": "depthscope.explain",
    "evaluate": "depthscope.metrics.evaluate", "DepthModel": "depthscope.models", "ModelConfig": "depthscope.models",
    "list_models": "depthscope.models", "load_model": "depthscope.models", "register_model": "depthscope.models",
    "meta_evaluate": "depthscope.meta", "robustness": "depthscope.robustness",
    "wrap": "depthscope.models", "predict": "depthscope.predict", "probe": "depthscope.probe", "report": "depthscope.report",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'depthscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


class _Package(types.ModuleType):
    """Five sub-packages are named like the functions they export (``depthscope.assess`` the package and
    ``depthscope.assess(...)`` the function): importing such a sub-package must not replace the function on
    the package (the eager ``from depthscope.assess import assess`` of old gave the function the last word)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _WHERE and isinstance(value, types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            return  # the sub-module stays in sys.modules; the name keeps meaning the function (resolved lazily)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "METHODS",
    "METRICS",
    "AssessConfig",
    "AssessmentMetric",
    "DepthModel",
    "ModelConfig",
    "assess",
    "compare",
    "evaluate",
    "explain",
    "list_models",
    "load_model",
    "open_dataset",
    "pareto",
    "predict",
    "probe",
    "profile",
    "register_method",
    "register_metric",
    "register_model",
    "report",
    "wrap",
]
__version__ = "0.1.0"
