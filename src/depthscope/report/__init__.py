"""The report: one self-contained HTML page per run (``html``) and the main job that fills it (``job``)."""

from depthscope.report.job import report

__all__ = ["report"]
