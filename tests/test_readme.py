"""The README's newcomer commands stay true: CI runs exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci_cmd = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.startswith("python3 -m venv")]
    assert len(ci_cmd) == 1
    assert ci_cmd[0] in readme
    assert "pip install -q torch==2.13.0" in ci_cmd[0]
