"""One self-contained HTML page per run: tables inline, figures embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from depthscope.output.files import write_atomic
from depthscope.output.tables import fmt


def html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(
    path: str | os.PathLike,
    title: str,
    metrics: Sequence[Mapping[str, Any]],
    assessment: Sequence[Mapping[str, Any]],
    figures: Sequence[str | os.PathLike],
) -> Path:
    imgs = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(Path(f).read_bytes()).decode()}">'
        f"<figcaption>{html.escape(Path(f).name)}</figcaption></figure>"
        for f in figures
        if Path(f).exists()
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1><h2>Accuracy (depth in metres)</h2>{html_table(metrics)}
<h2>Explanations</h2>{imgs}<h2>Assessment of the attribution maps (mean and std over images)</h2>
{html_table(assessment)}</body></html>"""
    return write_atomic(path, page)
