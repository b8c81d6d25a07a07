"""One self-contained HTML page: sections of tables and figures (images inline as base64 PNG), score columns with
units and directions, and a "how this was made" block (versions, device, seeds, settings, wall time and the
commands that reproduce each section). Readable at 1400 px wide and printable to PDF; no script, no external
resource."""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import shlex
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthscope.output.files import write_atomic
from depthscope.output.tables import fmt

ARROWS = {"higher": "↑", "lower": "↓", "none": ""}
CONTROL = "random"  # the control method: a map that carries no information


@dataclass
class Section:
    """A part of the page: its heading, its HTML body, the command that reproduces it and how long it took."""

    title: str
    body: str
    command: Sequence[str] | None = None
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)


def random_weights_banner(name: str, weights: str | None) -> list[str]:
    """The page banner for a model whose weights record is ``random`` or None (none otherwise)."""
    if weights not in (None, "random"):
        return []
    return [f"{name} has random weights (no checkpoint was loaded): every number on this page describes an "
            "untrained network."]  # fmt: skip


def esc(value: Any) -> str:
    return html.escape(str(value))


def figure(path: str | os.PathLike, caption: str) -> str:
    """``path`` (a PNG) inline, with its caption; a missing file says so instead of a broken image."""
    p = Path(path)
    if not p.is_file():
        return f"<p class='missing'>(figure {esc(p.name)} was not written)</p>"
    data = base64.b64encode(p.read_bytes()).decode()
    return (
        f"<figure><img src='data:image/png;base64,{data}' alt='{esc(caption)}'>"
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def plain_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a table, cells formatted with :func:`~depthscope.output.tables.fmt`."""
    if not rows:
        return "<p>(no rows)</p>"
    cols = list(columns) if columns else list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _header(name: str, better: str, unit: str, description: str) -> str:
    arrow = ARROWS.get(better, "")
    tip = f" title='{esc(description)}'" if description else ""
    sub = " ".join(x for x in (f"({unit})" if unit else "", arrow) if x)
    return f"<th{tip}>{esc(name)}<br><span class='unit'>{esc(sub)}</span></th>"


def _definitions(defs: Mapping[str, tuple[str, str, str]]) -> str:
    items = "".join(
        f"<dt>{esc(k)} {ARROWS.get(b, '')}</dt><dd>{esc(d)}{f' [{esc(u)}]' if u else ''}"
        f"{'; higher is better' if b == 'higher' else '; lower is better' if b == 'lower' else ''}</dd>"
        for k, (b, u, d) in defs.items()
        if d
    )
    return f"<dl class='defs'>{items}</dl>" if items else ""


def accuracy_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Accuracy rows (``model``, ``n`` and the standard metrics) with units, directions and definitions
    (d: prediction, d*: ground truth, over valid pixels; each image's value, averaged over images)."""
    from depthscope.metrics.depth import LOWER_IS_BETTER, METRIC_DESCRIPTIONS, METRIC_NAMES, METRIC_UNITS

    defs = {
        m: ("lower" if LOWER_IS_BETTER[m] else "higher", METRIC_UNITS.get(m, ""), METRIC_DESCRIPTIONS[m])
        for m in METRIC_NAMES
    }
    head = "<th>model</th><th>weights</th><th>n</th>" + "".join(_header(m, *defs[m]) for m in METRIC_NAMES)
    body = "".join(
        f"<tr><td class='l'>{esc(r['model'])}</td><td class='l{' warn' if r.get('weights') == 'random' else ''}'>"
        f"{esc(r.get('weights', ''))}</td><td>{esc(r.get('n', ''))}</td>"
        + "".join(f"<td>{esc(fmt(r[m]))}</td>" for m in METRIC_NAMES)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{_definitions(defs)}"


def depth_groups_table(metrics: Mapping[str, Any], groups: Mapping[str, Mapping[str, Any]]) -> str:
    """The registered depth metric groups' aggregates (``evaluate --metrics``) as one row, each column with its
    unit, direction and definition."""
    from depthscope.metrics.registry import DEPTH_METRICS

    cols = [c for name, opts in groups.items() if name != "standard" for c in DEPTH_METRICS.get(name).columns(opts)]
    if not cols:
        return ""
    defs = {c.name: ("lower" if c.lower_is_better else "higher", c.unit, c.description) for c in cols}
    tables = []
    for i in range(0, len(cols), 8):  # at most 8 columns a table: the page stays within 1400 px
        part = cols[i : i + 8]
        head = "".join(_header(c.name, *defs[c.name]) for c in part)
        body = "".join(f"<td>{esc(fmt(metrics.get(c.name, float('nan'))))}</td>" for c in part)
        tables.append(f"<table><thead><tr>{head}</tr></thead><tbody><tr>{body}</tr></tbody></table>")
    return "".join(tables) + _definitions(defs)


def score_table(summary: Sequence[Mapping[str, Any]], descriptions: Mapping[str, str] | None = None) -> str:
    """The assessment summary (``summary.csv`` rows: ``<score>_mean``, ``_std``, ``_better``, ``_unit``) as one
    ``mean ± std`` cell per score, headed by its unit and direction, with n; the control method's row marked."""
    if not summary:
        return "<p>(no rows)</p>"
    scores = [k.removesuffix("_mean") for k in summary[0] if k.endswith("_mean")]
    first = summary[0]
    defs = {s: (first.get(f"{s}_better", "none"), first.get(f"{s}_unit", ""), (descriptions or {}).get(s, ""))
            for s in scores}  # fmt: skip
    head = "<th>model</th><th>method</th><th>n</th>" + "".join(_header(s, *defs[s]) for s in scores)
    body = []
    for r in summary:
        control = r["method"] == CONTROL
        name = f"{r['method']} (control)" if control else r["method"]
        cells = "".join(f"<td>{esc(fmt(r[f'{s}_mean'], 3))} ± {esc(fmt(r[f'{s}_std'], 3))}</td>" for s in scores)
        body.append(
            f"<tr{' class=control' if control else ''}><td class='l'>{esc(r['model'])}</td><td class='l'>"
            f"{esc(name)}</td><td>{esc(r['n_images'])}</td>{cells}</tr>"
        )
    note = (
        f"<p class='note'>Mean ± std over n images. <b>{CONTROL}</b> is the control: a map of noise that carries no "
        "information about the model; a method is informative only where it beats the control.</p>"
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}{_definitions(defs)}"


def provenance(device: str = "cpu", seeds: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Versions, machine, device and threads: what a reader needs to trust or rerun the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    import numpy as np
    import torch

    try:
        ours = version("depthscope")
    except PackageNotFoundError:  # run from a source tree without installing
        ours = "unknown (not installed)"
    dev = device
    if str(device).startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {
        "depthscope": ours,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "host": socket.gethostname(),
        "device": dev,
        "torch_threads": torch.get_num_threads(),
        "seeds": dict(seeds or {}),
        "written": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def provenance_block(info: Mapping[str, Any], settings: Mapping[str, Any], sections: Sequence[Section]) -> str:
    """The "how this was made" block: versions and machine, every setting, each section's wall time and the
    command that reproduces it."""
    rows = "".join(f"<tr><th class='l'>{esc(k)}</th><td class='l'>{esc(v)}</td></tr>" for k, v in info.items())
    timing = "".join(
        f"<tr><th class='l'>{esc(s.title)}</th><td>{'' if s.seconds is None else f'{s.seconds:.1f} s'}</td>"
        f"<td class='l'><code>{esc(shlex.join(s.command)) if s.command else ''}</code></td></tr>"
        for s in sections
    )
    total = sum(s.seconds or 0 for s in sections)
    return (
        "<h2 id='provenance'>How this was made</h2><table class='prov'>" + rows + "</table>"
        "<h3>Sections: wall time and the command that reproduces each</h3>"
        f"<table class='prov'><thead><tr><th class='l'>section</th><th>wall time</th><th class='l'>command</th></tr>"
        f"</thead><tbody>{timing}<tr><th class='l'>total</th><td>{total:.1f} s</td><td></td></tr></tbody></table>"
        "<h3>Settings</h3><pre>" + esc(json.dumps(settings, indent=1, default=str)) + "</pre>"
    )


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1360px;
padding:0 16px;color:#222;line-height:1.4}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
h3{font-size:15px}table{border-collapse:collapse;font-size:12.5px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top}th{background:#f4f4f4}
.l{text-align:left}.unit{font-weight:normal;color:#555;font-size:11px}tr.control td{background:#f0f0f0;
font-style:italic}td.warn,p.warn{color:#b00;font-weight:bold}.banner{border:2px solid #b00;background:#fff3f3;
padding:8px 12px;color:#900;font-weight:bold}figure{margin:10px 0}img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555}.defs{font-size:12px;display:grid;grid-template-columns:max-content 1fr;
gap:1px 10px}.defs dt{font-weight:bold}.defs dd{margin:0}.note{font-size:12.5px}pre{font-size:11px;
background:#f8f8f8;padding:8px;white-space:pre-wrap;word-break:break-all}code{font-size:11.5px;word-break:break-all}
.cmd{font-size:12px;color:#333}.toc{font-size:13px}
@media print{body{max-width:none;margin:0}h2{break-after:avoid}figure,table{break-inside:avoid}}
"""


def write_page(
    path: str | os.PathLike,
    title: str,
    sections: Sequence[Section],
    info: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    banners: Sequence[str] = (),
) -> Path:
    """Write one self-contained page of ``sections`` and the provenance block to ``path``.

    Args:
        path: the HTML file.
        title: the page's heading.
        sections: the page's sections, in order.
        info: :func:`provenance` (default: measured now).
        settings: every setting of the run, shown as JSON.
        banners: warnings shown at the top in red (random weights, ...).

    Returns:
        ``path``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> page = write_page(Path(tempfile.mkdtemp()) / "r.html", "demo", [Section("notes", "<p>hello</p>")])
        >>> "hello" in page.read_text() and "How this was made" in page.read_text()
        True
    """
    toc = " · ".join(f"<a href='#s{k}'>{esc(s.title)}</a>" for k, s in enumerate(sections))
    parts = []
    for k, s in enumerate(sections):
        cmd = f"<p class='cmd'>Reproduce: <code>{esc(shlex.join(s.command))}</code></p>" if s.command else ""
        notes = "".join(f"<p class='note'>{n}</p>" for n in s.notes)
        parts.append(f"<h2 id='s{k}'>{esc(s.title)}</h2>{notes}{s.body}{cmd}")
    warn = "".join(f"<p class='banner'>{esc(b)}</p>" for b in banners)
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width'><title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>{warn}<p class='toc'>{toc} · <a href='#provenance'>how this was made</a></p>"
        + "".join(parts)
        + provenance_block(info or provenance(), settings or {}, sections)
        + "</body></html>"
    )
    return write_atomic(path, page)
