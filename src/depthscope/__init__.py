"""depthscope: evaluate, explain and profile monocular depth estimation models.

``load_model`` / ``wrap`` give a :class:`DepthModel` (images in [0, 1] -> metric depth in metres); ``predict``,
``evaluate``, ``explain``, ``assess``, ``compare``, ``profile``, ``pareto`` and ``report`` are the Python API behind the CLI
commands of the same names. Extension points: ``register_model`` (with a ``ModelConfig``), ``register_method``, ``register_metric``.
"""

from depthscope.assess import METRICS, AssessConfig, AssessmentMetric, assess, register_metric
from depthscope.compare import compare
from depthscope.data import open_dataset
from depthscope.efficiency import pareto, profile
from depthscope.explain import METHODS, explain, register_method
from depthscope.metrics.evaluate import evaluate
from depthscope.models import DepthModel, ModelConfig, list_models, load_model, register_model, wrap
from depthscope.predict import predict
from depthscope.report import report

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
    "profile",
    "register_method",
    "register_metric",
    "register_model",
    "report",
    "wrap",
]
__version__ = "0.1.0"
