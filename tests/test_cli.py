import json
import subprocess
import sys

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
