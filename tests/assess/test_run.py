import json
import os
import signal
import subprocess
import sys
import time

import pytest
from results_compare import assert_same_rows, rows

CMD = [
    sys.executable,
    "-m",
    "depthscope.cli",
    "assess",
    "--methods",
    "saliency,random",
    "--limit",
    "3",
    "--chunk-size",  # fixed: runs that each measured their own batch differently would round differently
    "4",
    "--n-perturbations",
    "4",
]


def test_killed_run_resumes_to_the_same_summary(tmp_path, two_scenes):
    """Killed after two rows, rerun: every (method, image) once, the scores of an uninterrupted run, on two scene
    folders that reuse file names (finished work is keyed by the path, SPEC §7)."""
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    data = ["--data", str(two_scenes), "--dataset", "nyu"]
    proc = subprocess.Popen([*CMD, *data, "--out", str(killed)], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(rows(killed / "results.csv")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_before = len(rows(killed / "results.csv"))
    assert 2 <= n_before < 6, "the run should have been killed halfway"
    subprocess.run([*CMD, *data, "--out", str(killed)], check=True, capture_output=True)
    subprocess.run([*CMD, *data, "--out", str(clean)], check=True, capture_output=True)
    got, want = rows(killed / "results.csv"), rows(clean / "results.csv")
    keys = [(r["model"], r["method"], r["image"]) for r in got]
    assert len(keys) == len(set(keys)) == 6  # no duplicates, nothing missing
    assert {r["image"] for r in got} == {"scene_a/rgb_0", "scene_a/rgb_1", "scene_b/rgb_0"}  # --limit 3
    # The same scores, row for row (the same chunk size; approx for the float tolerance the helper states).
    assert_same_rows(got, want, skip={"seconds_per_map"})
    assert_same_rows(rows(killed / "summary.csv"), rows(clean / "summary.csv"), skip={"seconds_per_map_mean"})
    assert (killed / "curves.png").stat().st_size > 0
    other = subprocess.run([*CMD[:-1], "5", *data, "--out", str(killed)], capture_output=True, text=True)
    assert other.returncode == 2 and "other settings (n_perturbations)" in other.stderr
    rebatched = subprocess.run([*CMD[:-3], "3", *CMD[-2:], *data, "--out", str(killed)], capture_output=True, text=True)
    assert rebatched.returncode == 2 and "computed 4 inputs per forward, not 3" in rebatched.stderr


def test_unknown_method_fails_before_work(tmp_path, nyu_dir):
    r = subprocess.run(
        [*CMD[:5], "lime", "--data", str(nyu_dir), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert r.returncode == 2 and "unknown attribution method 'lime'" in r.stderr
    assert not (tmp_path / "results.csv").exists()


@pytest.mark.parametrize("torn", [True])
def test_torn_last_row_is_dropped(tmp_path, torn):
    from depthscope.output.files import CsvAppender

    a = CsvAppender(tmp_path / "r.csv", ["a", "b"])
    a.append({"a": 1, "b": 2})
    with open(tmp_path / "r.csv", "a") as f:
        f.write("3,")  # a crash mid-row
    b = CsvAppender(tmp_path / "r.csv", ["a", "b"])
    assert b.rows == [{"a": "1", "b": "2"}]
    b.append({"a": 5, "b": 6})
    assert rows(tmp_path / "r.csv") == [{"a": "1", "b": "2"}, {"a": "5", "b": "6"}]


def test_bad_infidelity_sigma_fails_before_work(tmp_path, nyu_dir):
    r = subprocess.run(
        [*CMD, "--infidelity-sigma", "0", "--data", str(nyu_dir), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "infidelity_sigma must be > 0" in r.stderr
    assert not (tmp_path / "results.csv").exists()


def test_assess_image_infidelity_uses_the_given_noise(meter_nyu, small_image):
    """The dataset run's infidelity equals the function's on the same seed, sigma and symmetry (over the whole
    image, as the function draws its noise: ``perturb_region="full"``)."""
    from depthscope.assess import AssessConfig, infidelity
    from depthscope.assess.run import assess_image
    from depthscope.explain import explain, target_model

    def config(**infidelity_options):
        opts = {"infidelity": infidelity_options}
        return AssessConfig(methods=("saliency",), metrics=("infidelity",), n_perturbations=6, metric_options=opts,
                            perturb_region="full")  # fmt: skip

    ((_, scores),) = assess_image(meter_nyu, small_image, config(symmetric=True, sigma=0.01))
    fm = target_model(meter_nyu, small_image, "mean")
    attr = explain(meter_nyu, small_image, "saliency", "mean")["saliency"].raw
    ref = infidelity(fm, small_image, attr, 6, sigma=0.01, seed=0, symmetric=True)
    assert scores["infidelity"] == pytest.approx(ref.value, rel=1e-4)
    other = infidelity(fm, small_image, attr, 6, sigma=0.1, seed=0, symmetric=True)
    assert other.value != pytest.approx(ref.value, rel=0.1)
    ((_, plain),) = assess_image(meter_nyu, small_image, config(control_variate=False))
    ref = infidelity(fm, small_image, attr, 6, seed=0, control_variate=False)
    assert plain["infidelity"] == pytest.approx(ref.value, rel=1e-4)
    assert (
        plain["infidelity_ci_high"] - plain["infidelity_ci_low"]
        > scores["infidelity_ci_high"] - scores["infidelity_ci_low"]
    )


def test_random_weights_are_recorded_and_never_mixed_with_trained_rows(tmp_path, nyu_dir, meter_nyu, capsys):

    from depthscope.assess import AssessConfig, assess
    from depthscope.errors import InputError
    from depthscope.models import load_model

    cfg = AssessConfig(methods=("random",), metrics=("curves",))
    untrained = load_model("meter-xxs-nyu", pretrained=False)
    assess([untrained], nyu_dir, cfg, tmp_path, limit=1)
    assert "meter-xxs-nyu has random weights" in capsys.readouterr().err
    assert json.loads((tmp_path / "settings.json").read_text())["model_weights"] == {"meter-xxs-nyu": "random"}
    with pytest.raises(InputError, match="holds rows of meter-xxs-nyu with weights random"):
        assess([meter_nyu], nyu_dir, cfg, tmp_path, limit=1)
