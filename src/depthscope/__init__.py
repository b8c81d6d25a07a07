"""depthscope: evaluate, explain and profile monocular depth estimation models.

``load_model`` / ``wrap`` give a :class:`DepthModel` (images in [0, 1] -> metric depth in metres); ``evaluate``,
``explain``, ``assess``, ``profile`` and ``pareto`` are the Python API behind the CLI commands of the same names.
"""

from depthscope.assess import assess
from depthscope.data import open_dataset
from depthscope.efficiency import pareto, profile
from depthscope.explain import explain
from depthscope.metrics.evaluate import evaluate
from depthscope.models import DepthModel, list_models, load_model, wrap

__all__ = [
    "DepthModel",
    "assess",
    "evaluate",
    "explain",
    "list_models",
    "load_model",
    "open_dataset",
    "pareto",
    "profile",
    "wrap",
]
__version__ = "0.1.0"
