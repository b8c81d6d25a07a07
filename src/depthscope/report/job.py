"""The main job in one call: accuracy on a dataset, an explanation figure of its first image, the assessment
table, gathered in one self-contained HTML page (``depthscope report``)."""

from __future__ import annotations

import os
from pathlib import Path

from depthscope.assess import AssessConfig, assess, display_summary
from depthscope.data.datasets import DepthDataset, open_dataset
from depthscope.explain import explain, save_explanation
from depthscope.metrics import METRIC_NAMES
from depthscope.metrics.evaluate import evaluate
from depthscope.models import DepthModel, load_model
from depthscope.output.tables import format_table
from depthscope.report.html import write_report

# The figure's IG is adaptive (2 % completeness error): one image, so accuracy is worth the extra steps.
FIGURE_OPTIONS = {"integrated_gradients": {"n_steps": 24, "tolerance": 0.02}}


def report(
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    out: str | os.PathLike = "runs/demo",
    config: AssessConfig | None = None,
    limit: int = 3,
    device: str = "cpu",
    progress: bool = False,
    echo: bool = False,
) -> Path:
    """Evaluate ``model`` on ``data``, explain its first image and assess ``config.methods`` on ``limit`` images.

    Args:
        model: a :class:`DepthModel` or a model name.
        data: a dataset or a path :func:`depthscope.open_dataset` reads.
        out: output directory: ``report.html``, ``evaluate/``, ``explain.png`` and ``assess/``.
        config: the assessment's settings (default :class:`AssessConfig`); its methods are also the figure's.
        limit: images to assess (the evaluation uses all of them).
        device: where to load ``model`` when it is a name.
        progress: progress bars.
        echo: print each section's table as it is finished.

    Returns:
        The path of ``report.html``.

    Example:
        >>> import tempfile, depthscope as ds
        >>> from depthscope.data import find_data
        >>> cfg = ds.AssessConfig(methods=("saliency",), metrics=("curves",))
        >>> ds.report("meter-xxs-nyu", find_data(), tempfile.mkdtemp(), cfg, limit=1).name
        'report.html'
    """
    out = Path(out)
    config = config or AssessConfig()
    model = load_model(model, device=device) if isinstance(model, str) else model
    data = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
    result = evaluate(model, data, out=out / "evaluate", progress=progress)
    metrics_rows = [{"model": result.model, "n": len(result.per_image), **result.metrics}]
    if echo:
        print(format_table(metrics_rows, ["model", "n", *METRIC_NAMES]))
    first = data[0]
    options = {k: v for k, v in FIGURE_OPTIONS.items() if k in config.methods}
    attrs = explain(model, first.image, config.methods, "mean", options)
    files = save_explanation(
        out, model, first.image, attrs, "mean", first.depth, title=f"{model.name} · {first.name} · target: mean depth"
    )
    summary = assess([model], data, config, out / "assess", limit=limit, device=device, progress=progress)
    table = display_summary(summary)
    if echo:
        print(format_table(table))
    return write_report(
        out / "report.html",
        f"depthscope report: {model.name}",
        metrics_rows,
        table,
        [files["explain.png"], out / "assess" / "curves.png"],
    )
