"""The main job's report, rendered in a real browser (headless Chromium): no console error, every image loaded,
nothing wider than 1400 px; and its content checked against the run's own files (CSV, JSON) and settings."""

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import depthscope as ds
from depthscope.output.tables import fmt


@pytest.fixture(scope="module")
def page(meter_nyu, nyu_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    config = ds.AssessConfig(methods=("saliency", "random"), metrics=("curves",), n_perturbations=8)
    return ds.report(meter_nyu, nyu_dir, out, config, limit=2, gallery=2)


def test_report_renders_in_chromium_without_errors(page, browser, tmp_path):
    browser.get(page.as_uri())
    logs = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert logs == []
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0, i.naturalWidth])"
    )
    assert len(images) == 4  # gallery, explanation figure, curves, corruptions
    assert all(ok for _, ok, _ in images), images
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 1400  # readable at 1400 px: no horizontal scrolling
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height)
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    if os.environ.get("DEPTHSCOPE_SCREENSHOTS"):  # how docs/report.png is made
        shutil.copy(shot, Path(os.environ["DEPTHSCOPE_SCREENSHOTS"]) / "report.png")
    assert shot.stat().st_size > 50_000
    browser.set_window_size(1400, 1000)


def test_report_states_units_directions_control_and_provenance(page):
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text  # self-contained, offline
    assert "random (control)" in text and "class=control" in text
    assert re.search(r"af_perturbation<br><span class='unit'>↑</span>", text)
    assert re.search(r"lerf_auc<br><span class='unit'>\(m\) ↓</span>", text)
    assert re.search(r"rmse<br><span class='unit'>\(m\) ↓</span>", text)
    import torch

    for needle in (f"torch</th><td class='l'>{torch.__version__}", "depthscope</th>", "torch_threads",
                   "depthscope evaluate --model meter-xxs-nyu", "depthscope assess --model meter-xxs-nyu",
                   "--limit 2 --methods saliency,random --metrics curves --n-perturbations 8"):  # fmt: skip
        assert needle in text, needle


def test_report_numbers_are_the_runs_files(page):
    out = page.parent
    metrics = json.loads((out / "evaluate" / "metrics.json").read_text())
    text = page.read_text()
    assert f"<td>{metrics['rmse']:.4f}</td>" in text
    summary = {r["method"]: r for r in csv.DictReader(open(out / "assess" / "summary.csv"))}
    sal = summary["saliency"]
    assert f"{float(sal['af_perturbation_mean']):.3f} ± {float(sal['af_perturbation_std']):.3f}" in text
    assert metrics["weights"].endswith("meter_xxs_nyu.pth") and metrics["n_without_gt"] == 0
    for k in ("boundary_f1", "chamfer", "normal_median_deg", "rmse_0_2m"):  # the depth groups beside the ten
        assert f"<td>{fmt(metrics[k])}</td>" in text, k
    assert json.loads((out / "explain.json").read_text())["image"].endswith("image_0.png")  # the file, not "tensor"
    rob = json.loads((out / "robustness" / "robustness.json").read_text())
    assert f"mCE {rob['mce']:.1%}" in text and f"mRR {rob['mrr']:.1%}" in text


def test_assess_command_in_the_report_rebuilds_its_settings(page):
    """The 'reproduce' line of the assessment parses back to the very config the run recorded."""
    import shlex

    from depthscope.cli import build_parser
    from depthscope.cli.assess import assess_config

    text = page.read_text()
    line = re.search(r"Reproduce: <code>(depthscope assess [^<]+)</code>", text).group(1)
    import html

    args = build_parser().parse_args(shlex.split(html.unescape(line))[1:])
    recorded = json.loads((page.parent / "assess" / "settings.json").read_text())
    recorded.pop("forward_chunk_size"), recorded.pop("model_weights")
    assert assess_config(args).settings() == recorded


def test_commands_write_their_page_with_html(nyu_dir, tmp_path, browser):
    """--html on other commands: the same page, with the command line that made it, rendered without errors."""
    from depthscope.cli import main

    runs = {
        "evaluate": ["evaluate", "--data", str(nyu_dir), "--limit", "2", "--out", str(tmp_path / "e")],
        "predict": ["predict", "--images", str(nyu_dir / "image_1.png"), "--out", str(tmp_path / "p"),
                    "--format", "npy,color"],
        "profile": ["profile", "--model", "meter-xxs-nyu", "--counts-only", "--input-size", "96", "128",
                    "--out", str(tmp_path / "c")],
    }  # fmt: skip
    for name, argv in runs.items():
        page = tmp_path / f"{name}.html"
        assert main([*argv, "--html", str(page)]) == 0
        text = page.read_text()
        assert "How this was made" in text and f"depthscope {name} " in text
        browser.get(page.as_uri())
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
        ok = browser.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert ok, name
    assert "<img" in (tmp_path / "predict.html").read_text()  # the colour preview
    assert "rmse<br>" in (tmp_path / "evaluate.html").read_text()  # the accuracy table with units
