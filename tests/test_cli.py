import json
import subprocess
import sys

import pytest

from depthscope.cli import main


def test_evaluate_cli_writes_results(tmp_path, nyu_dir, capsys):
    rc = main(
        [
            "evaluate",
            "--model",
            "meter-xxs-nyu",
            "--data",
            str(nyu_dir),
            "--crop",
            "eigen",
            "--limit",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_images"] == 2 and m["crop"] == "eigen"
    assert "rmse" in capsys.readouterr().out


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "depthscope.cli", "evaluate", "--model", "meter-xxl", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "unknown model 'meter-xxl'; valid models:" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "depthscope.cli", "evaluate", "--data", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "dataset path does not exist" in r.stderr and "Traceback" not in r.stderr


def test_explain_cli_writes_maps_figure_and_sanity(tmp_path, nyu_dir, meter_nyu):
    import numpy as np

    from depthscope.explain import explain

    image = nyu_dir / "image_3.png"
    rc = main(
        [
            "explain",
            "--image",
            str(image),
            "--method",
            "saliency,integrated_gradients",
            "--target",
            "box:100,100,200,300",
            "--option",
            "integrated_gradients.n_steps=4",
            "--option",
            "integrated_gradients.tolerance=null",  # Captum's fixed rule, 4 nodes: quick
            "--sanity",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    api = explain(
        meter_nyu,
        image,
        ["saliency", "integrated_gradients"],
        "box:100,100,200,300",
        {"integrated_gradients": {"n_steps": 4, "tolerance": None}},
    )
    for name in ("saliency", "integrated_gradients"):
        mag, signed = np.load(tmp_path / f"{name}.npy"), np.load(tmp_path / f"{name}_signed.npy")
        assert mag.dtype == np.float32 and mag.shape == (480, 640) and signed.shape == (480, 640)
        np.testing.assert_allclose(mag, api[name].magnitude[0].numpy(), rtol=1e-5, atol=1e-9)
        assert (mag >= 0).all() and (signed < 0).any() and (signed > 0).any()
    info = json.loads((tmp_path / "explain.json").read_text())
    assert info["methods"]["integrated_gradients"]["n_steps"] == 4 and info["target"] == "box:100,100,200,300"
    assert (tmp_path / "explain.png").stat().st_size > 10_000
    rows = (tmp_path / "sanity.csv").read_text().splitlines()
    assert rows[0] == "method,block,spearman,ssim"
    last_saliency = [r for r in rows[1:] if r.startswith("saliency,")][-1].split(",")
    assert float(last_saliency[2]) < 0.5  # the whole network random: the map no longer resembles the original


def test_every_option_with_a_default_shows_it_in_help():
    """`--help` states each default, so nobody has to read the code to know what a run will do."""
    import argparse

    from depthscope.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    silent = [
        f"{name} {a.option_strings[0]}"
        for name, p in sub.choices.items()
        for a in p._actions
        if a.option_strings
        and a.help
        and a.default not in (None, False, [], argparse.SUPPRESS)
        and "default" not in a.help
    ]
    assert silent == []


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path, nyu_dir):
    """SIGINT while torch is being imported (seen in /proc/PID/maps) ends with one line and status 130."""
    import os
    import signal
    import time
    from pathlib import Path

    import pytest

    argv = [sys.executable, "-m", "depthscope.launch", "assess", "--data", str(nyu_dir), "--out", str(tmp_path / "a")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    if not maps.exists():
        proc.kill()
        pytest.skip("no /proc here to see when torch is being imported")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and "torch" not in maps.read_text(errors="replace"):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "interrupted" in err and len([ln for ln in err.splitlines() if ln.strip()]) <= 3


def test_version_and_listings(capsys):
    import importlib.metadata

    from depthscope.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"depthscope {importlib.metadata.version('depthscope')} (torch ")
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "saliency" in out and "integrated_gradients" in out and "needs gradients" in out
    assert main(["list", "models", "meter-xxs-*"]) == 0
    out = capsys.readouterr().out
    assert "meter-xxs-nyu" in out and "published" in out and "meter-s " not in out
    assert main(["list", "metrics", "*mprt"]) == 0
    assert {ln.split()[0] for ln in capsys.readouterr().out.splitlines()[2:]} == {
        "mprt",
        "smooth_mprt",
        "efficient_mprt",
    }
    for what in ("depth-metrics", "datasets", "probes", "corruptions", "tests"):
        assert main(["list", what]) == 0 and capsys.readouterr().out.count("\n") > 3, what
    assert main(["list", "models", "nothing-*"]) == 0 and "no models match" in capsys.readouterr().out


def test_help_shows_the_defaults_a_run_uses():
    """The recommended protocol sets the curves' replacement and patch; --help says so, not the bare field default."""
    from depthscope.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assess = {a.dest: a.help for a in sub.choices["assess"]._actions}
    assert "(default blur: the recommended protocol)" in assess["curves_replacement"]
    assert "(default 8: the recommended protocol)" in assess["curves_patch"]
    assert "integrated_gradients: baseline=black, n_steps=16" in assess["option"]  # every method's options listed
    meta = {a.dest: a.help for a in sub.choices["meta-evaluate"]._actions}
    assert "(default 4: this command's setting)" in meta["sensitivity_n_samples"]
