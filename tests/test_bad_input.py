"""Hostile files and careless input (SPEC §7): one test per class of case, each asserting the one-line error (or
the explicit warning) a user gets, on the real weights and the NYU sample. Classes: code from checkpoints,
finished work keyed by path, concurrent runs, silently wrong numbers, tracebacks on everyday mistakes, messages
that blame the wrong thing."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_errors import one_line_error
from PIL import Image

from depthscope.cli import main
from depthscope.errors import CheckpointError, InputError, RunLockedError
from depthscope.models import load_model
from depthscope.models.optimized import save_optimized

WEIGHTS = Path(os.environ["DEPTHSCOPE_WEIGHTS"]) / "meter"


def cli(capsys, *argv):
    """``depthscope ARGV`` in process: (exit code, stderr)."""
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


# ------------------------------------------------------------------------------------- 1. code from checkpoints
def _optimised(path: Path, base: str, steps=None) -> Path:
    net = load_model("meter-xxs-nyu", pretrained=False).net
    return save_optimized(path, net, base, steps if steps is not None else [], "meter+x")


def test_checkpoint_metadata_never_names_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef build():\n    return 1\n")
    for base, why in [("os:getpid", "an entry point, which a file's metadata may not run; if you trust that code, "
                       "type it: --model os:getpid --weights"), ("evil_module:build", "an entry point"),
                      ("meter-xxs-nyu.safetensors", "which is neither a registered model nor")]:  # fmt: skip
        path = _optimised(tmp_path / "m.safetensors", base)
        rc, err = cli(capsys, "evaluate", "--model", path, "--limit", 1)
        assert rc == 2
        one_line_error(err, f"its recipe names base model {base!r}, {why}")
    # a Hugging Face base is a config read from this machine, never fetched because a file names it
    for base, why in [
        ("hf:/tmp/does-not-exist", "Hugging Face model directory /tmp/does-not-exist does not exist"),
        ("hf:nobody/never-downloaded", "cannot read the config.json of Hugging Face model 'nobody/never-downloaded'"),
    ]:
        path = _optimised(tmp_path / "hf.safetensors", base)
        rc, err = cli(capsys, "evaluate", "--model", path, "--limit", 1)
        assert rc == 2
        one_line_error(err, f"the base model its recipe names, {base}: {why}")
    # --model NAME --weights FILE: the file must have been optimised from the very model typed
    path = _optimised(tmp_path / "evil.safetensors", "evil_module:build")
    rc, err = cli(capsys, "evaluate", "--model", "os:getpid", "--weights", path, "--limit", 1)
    assert rc == 2
    one_line_error(err, f"{path} was optimised from 'evil_module:build', not from 'os:getpid'")
    path = _optimised(tmp_path / "nyu.safetensors", "meter-xxs-nyu")
    rc, err = cli(capsys, "evaluate", "--model", "meter-xxs-kitti", "--weights", path, "--limit", 1)
    assert rc == 2
    one_line_error(err, "was optimised from 'meter-xxs-nyu', not from 'meter-xxs-kitti'; use --model meter-xxs-nyu")
    typed, by_path = load_model("meter-xxs-nyu", weights=path), load_model(str(path))
    assert typed.name == by_path.name == "meter+x"
    assert all(torch.equal(v, by_path.net.state_dict()[k]) for k, v in typed.net.state_dict().items())
    assert not marker.exists() and "evil_module" not in sys.modules
    path = _optimised(tmp_path / "steps.safetensors", "meter-xxs-nyu", [{"method": "exec", "code": "x"}])
    with pytest.raises(CheckpointError, match=r"steps depthscope does not write \('exec'\); known steps: distill"):
        load_model(str(path))
    path = _optimised(tmp_path / "bad.safetensors", "meter-xxs-nyu", [{"method": "meta"}])  # no kernel
    with pytest.raises(CheckpointError, match=r"malformed recipe step in its metadata \(KeyError: 'kernel'\)"):
        load_model(str(path))


def test_refused_pickle_gets_no_advice_to_unpickle_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError) as e:
        load_model("meter-xxs-nyu", weights=tmp_path / "evil.pth")
    assert "holds code or objects other than tensors" in str(e.value) and "weights_only" not in str(e.value)


# --------------------------------------------------------------------------- 2. finished work keyed by its path
# A killed run over two scene folders that reuse file names resumes to the uninterrupted run's rows:
# tests/assess/test_run.py::test_killed_run_resumes_to_the_same_summary (the `two_scenes` fixture).
def rows_of(path):
    return list(csv.DictReader(open(path))) if path.exists() else []


ASSESS = [sys.executable, "-m", "depthscope.cli", "assess", "--methods", "saliency", "--metrics", "curves,infidelity"]
ASSESS += ["--n-perturbations", "4", "--dataset", "nyu"]


def test_an_image_listed_twice_is_one_error(tmp_path, nyu_dir, capsys):
    lines = [f"{nyu_dir}/image_0.png,{nyu_dir}/depth_0.png"] * 2
    (tmp_path / "dup.csv").write_text("\n".join(lines) + "\n")
    rc, err = cli(capsys, "evaluate", "--data", tmp_path / "dup.csv")
    assert rc == 2
    one_line_error(err, "image_0.png is listed twice (entries 1 and 2); each image once")


# -------------------------------------------------------------------------------------- 3. two runs, one folder
def test_second_run_into_a_locked_folder_refuses_and_a_stale_lock_is_taken_over(tmp_path, nyu_dir, capsys):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*ASSESS, "--data", nyu_dir, "--out", out, "--limit", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 120
        while not (out / ".depthscope.lock").exists() and time.time() < deadline:
            time.sleep(0.05)
        rc, err = cli(capsys, "assess", "--data", nyu_dir, "--out", out, "--methods", "saliency", "--limit", 3)
        assert rc == 2
        one_line_error(err, "is being written by another run", f"pid {proc.pid}")
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0 and len(rows_of(out / "results.csv")) == 3
    # a killed run leaves its lock behind; the next run takes it over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".depthscope.lock").write_text(f"{os.uname().nodename} {dead.pid}")
    cmd = ["assess", "--data", nyu_dir, "--out", out, "--limit", 3, "--methods", "saliency"]
    assert cli(capsys, *cmd, "--metrics", "curves,infidelity", "--n-perturbations", 4)[0] == 0
    assert not (out / ".depthscope.lock").exists()


def test_a_rerun_with_other_data_whose_names_coincide_is_refused(tmp_path, nyu_dir, capsys):
    """Two datasets whose images are both image_0 (keys coincide): a resumed assess or compare would keep the first
    dataset's rows as done. Refused with one line naming both; --force-new moves the first run aside."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, k in ((a, 0), (b, 1)):
        folder.mkdir()
        shutil.copy(nyu_dir / f"image_{k}.png", folder / "image_0.png")
        shutil.copy(nyu_dir / f"depth_{k}.png", folder / "depth_0.png")
    cheap = ["--methods", "random", "--metrics", "af_depth_correlation", "--dataset", "nyu"]
    for command, extra in (("assess", []), ("compare", ["--model", "meter-xxs-nyu", "--model", "meter-xxs-nyu"])):
        out = tmp_path / command
        assert cli(capsys, command, *extra, *cheap, "--data", a, "--out", out)[0] == 0
        first = rows_of(out / "results.csv")
        rc, err = cli(capsys, command, *extra, *cheap, "--data", b, "--out", out)
        assert rc == 2
        one_line_error(err, f"{out} holds results of {a} (1 files), not of {b} (1 files)", "--force-new")
        assert rows_of(out / "results.csv") == first
        assert cli(capsys, command, *extra, *cheap, "--data", b, "--out", out, "--force-new")[0] == 0
        (old,) = out.glob("previous-*")
        assert rows_of(old / "results.csv") == first and len(rows_of(out / "results.csv")) == len(first)
        assert rows_of(out / "results.csv") != first  # the other image's scores


def test_lock_api_names_the_holder(tmp_path):
    from depthscope.output.files import RunLock

    with RunLock(tmp_path), pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()


# ------------------------------------------------------------------------------------ 4. silently wrong numbers
def test_implausible_ground_truth_names_the_scale_that_fits(tmp_path, nyu_dir, capsys):
    metres = np.asarray(Image.open(nyu_dir / "depth_0.png")).astype(np.float64) / 1000  # metres in a uint16 PNG
    Image.fromarray(np.round(metres).astype(np.uint16)).save(tmp_path / "depth_0.png")
    shutil.copy(nyu_dir / "image_0.png", tmp_path / "image_0.png")
    rc, err = cli(capsys, "evaluate", "--data", tmp_path)
    assert rc == 2
    one_line_error(err, "depth_0.png: median valid depth", "implausible for nyu ground truth", "--depth-scale 1 would")
    rc, err = cli(capsys, "evaluate", "--data", nyu_dir, "--depth-scale", "0")
    one_line_error(err, "--depth-scale must be a number from 1e-6 to 1e9")
    rc, err = cli(capsys, "evaluate", "--data", nyu_dir, "--depth-scale", "-1000")
    one_line_error(err, "--depth-scale must be a number from 1e-6 to 1e9")


def test_other_models_published_weights_and_nan_weights_are_refused(tmp_path, capsys):
    rc, err = cli(capsys, "evaluate", "--model", "meter-xxs-nyu", "--weights", WEIGHTS / "meter_xxs_kitti.pth")
    assert rc == 2
    one_line_error(err, "is the published checkpoint of meter-xxs-kitti, not of meter-xxs-nyu")
    from depthscope.models import read_state_dict

    sd = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
          for k, v in read_state_dict(WEIGHTS / "meter_xxs_nyu.pth").items()}  # fmt: skip
    torch.save(sd, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match=r"nan.pth has NaN/Inf values in \d+ tensor\(s\)"):
        load_model("meter-xxs-nyu", weights=tmp_path / "nan.pth")


def test_wrong_dataset_layout_and_random_weights_are_said_loudly(nyu_dir, capsys, tmp_path):
    rc, err = cli(capsys, "evaluate", "--data", nyu_dir, "--dataset", "kitti", "--limit", 1, "--out", tmp_path / "k")
    assert "warning: " in err and "is not a KITTI frame (about 375x1242); is --dataset kitti right?" in err
    kitti = Path(os.environ["DEPTHSCOPE_DATA"]) / "kitti_sample"
    rc, err = cli(
        capsys, "evaluate", "--model", "meter-xxs-kitti", "--data", kitti, "--dataset", "nyu", "--out", tmp_path / "n"
    )
    assert "is not an NYU frame (480x640); is --dataset nyu right?" in err
    rc, err = cli(capsys, "evaluate", "--model", "meter-s", "--data", nyu_dir, "--limit", 1, "--out", tmp_path / "s")
    assert rc == 0 and "meter-s has random weights (no checkpoint was loaded)" in err


def test_exif_orientation_is_applied(tmp_path, nyu_dir):
    from depthscope.data import read_image

    img = Image.open(nyu_dir / "image_0.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the camera held upright
    img.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    x = read_image(tmp_path / "rotated.jpg")
    assert tuple(x.shape) == (3, 480, 640)  # shown as taken, not sideways


def test_api_refuses_images_out_of_range_and_bad_targets(meter_nyu, nyu):
    from depthscope import explain

    x = nyu[0].image
    with pytest.raises(InputError, match=r"values span 0..255; images must be in \[0, 1\]: divide by 255"):
        explain(meter_nyu, x * 255)
    with pytest.raises(InputError, match=r"is torch.uint8; images are float in \[0, 1\]: use x.float\(\) / 255"):
        explain(meter_nyu, (x * 255).to(torch.uint8))
    bad = x.clone()
    bad[0, 5, 5] = float("nan")
    with pytest.raises(InputError, match="contains NaN or Inf"):
        explain(meter_nyu, bad)
    for target, message in (
        (torch.zeros(480, 640), r"target weights of target\(s\) \[0\] are all zero"),
        (-torch.ones(480, 640), "target weights must be >= 0"),
        (torch.full((480, 640), float("nan")), "target weights contain NaN or Inf"),
    ):
        with pytest.raises(InputError, match=message):
            explain(meter_nyu, x, "saliency", target)
    # a 0/1 mask is the mean over its region: the same map as the box spec, not 30,000 times it
    mask = torch.zeros(480, 640)
    mask[100:200, 100:300] = 1
    a = explain(meter_nyu, x, "saliency", mask)["saliency"].raw
    b = explain(meter_nyu, x, "saliency", "box:100,100,200,300")["saliency"].raw
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-12)
    # a numpy image (H, W, 3) in [0, 1] is taken as it is
    hwc = explain(meter_nyu, x.permute(1, 2, 0).numpy(), "saliency")["saliency"].raw
    torch.testing.assert_close(hwc, explain(meter_nyu, x, "saliency")["saliency"].raw)


def test_no_result_from_nothing_or_from_a_longer_run(tmp_path, nyu_dir, capsys):
    for command in ("evaluate", "assess"):
        rc, err = cli(capsys, command, "--data", nyu_dir, "--limit", 0, "--out", tmp_path / command)
        assert rc == 2
        one_line_error(err, "--limit must be >= 1 image, got 0")
    # a failed rerun of evaluate leaves no metrics.json of the run before beside its own rows
    out = tmp_path / "eval"
    assert cli(capsys, "evaluate", "--data", nyu_dir, "--limit", 2, "--out", out)[0] == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(2):
        shutil.copy(nyu_dir / f"image_{i}.png", broken / f"image_{i}.png")
        shutil.copy(nyu_dir / f"depth_{i}.png", broken / f"depth_{i}.png")
    (broken / "image_1.png").write_bytes(b"torn")
    rc, err = cli(capsys, "evaluate", "--data", broken, "--out", out)
    assert rc == 2 and "image_1.png: not a readable image" in err
    assert not (out / "metrics.json").exists()


def test_optimize_rerun_with_fewer_steps_is_refused(tmp_path, capsys):
    args = ["optimize", "--method", "distill", "--student", "meter-xxs-nyu", "--out", tmp_path, "--batch", 1]
    args += ["--train-images", Path(os.environ["DEPTHSCOPE_DATA"]) / "nyu_sample" / "image_[0-1].png"]
    assert cli(capsys, *args, "--steps", 2, "--save-every", 1)[0] == 0
    rc, err = cli(capsys, *args, "--steps", 1, "--save-every", 1)
    assert rc == 2
    one_line_error(err, "holds 2 steps of", "more than the 1 asked for", "--steps >= 2 to continue it")


# --------------------------------------------------------------------------- 5. no traceback on everyday mistakes
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["evaluate", "--device", "cuda"] if not torch.cuda.is_available() else ["evaluate", "--device", "cuda:99"],
            "--device cuda",
        ),
        (["evaluate", "--device", "gpu0"], "--device 'gpu0' is not a torch device"),
        (["assess", "--n-perturbations", "0"], "n_perturbations must be between 2 and 1,000,000 draws, got 0"),
        (["assess", "--n-perturbations", "100000000"], "n_perturbations must be between 2 and 1,000,000 draws"),
        (["assess", "--patch", "0"], "curves_patch must be >= 1 pixel, got 0"),
        (["assess", "--curves-fractions", "0,0.5,0.2"], "curves_fractions must rise from 0 to at most 1"),
        (["assess", "--option", "integrated_gradients.n_step=4"], "integrated_gradients has no option 'n_step'"),
        (["assess", "--option", "n_steps=4"], "is not NAME.KEY=VALUE"),
        (
            ["assess", "--metrics", "curves", "--infidelity-sigma", "0.1"],
            "options given for metrics not requested: infidelity",
        ),
        (["assess", "--option", "integrated_gradients.n_steps=many"], "integrated_gradients.n_steps must be a number"),
        (["profile", "--repeats", "0"], "--repeats must be >= 1"),
        (["meta-evaluate", "--tests", "input_noise"], "needs at least one minor and one disruptive test"),
        (["meta-evaluate", "--repeats", "0"], "--repeats must be >= 1, got 0"),
        (["meta-evaluate", "--metrics", "target_share"], "target_share has no direction"),
        (
            ["assess", "--metrics", "faithfulness_estimate"],
            "'faithfulness_estimate' is now called 'faithfulness_correlation'",
        ),
        (["assess", "--metrics", "road", "--road-replacement", "mean"], "road_replacement is ROAD's noisy linear"),
        (["profile", "--threads", "0"], "--threads must be >= 1, got 0"),
        (["profile", "--batches", "1,x"], "--batches takes comma-separated integers, got '1,x'"),
        (
            ["explain", "--methods", "lime"],
            "unknown attribution method 'lime'; valid attribution methods: attention_rollout",
        ),
        (["explain", "--depth", "missing_depth.png"], "--depth missing_depth.png: no such file"),
        (
            ["explain", "--methods", "smoothgrad", "--option", "smoothgrad.sigma=-1"],
            "smoothgrad.sigma is the noise's standard deviation, a number > 0, got -1.0",
        ),
        (
            ["optimize", "--method", "distill", "--student", "meter-xxs-nyu", "--steps", "-1"],
            "--steps must be an integer >= 0, got -1",
        ),
        (
            ["optimize", "--method", "distill", "--student", "meter-xxs-nyu", "--lr", "0"],
            "--lr must be a finite number > 0, got 0.0",
        ),
        (
            ["evaluate", "--median-scaling", "--align", "lstsq-depth"],
            "--median-scaling and --align lstsq-depth ask for two different fits",
        ),
    ],
)
def test_everyday_mistakes_are_one_line(argv, message, capsys, tmp_path):
    rc, err = cli(capsys, *argv, "--out", tmp_path / "out")
    assert rc == 2
    one_line_error(err, message)


def test_unusable_paths_and_images_are_one_line(tmp_path, nyu_dir, capsys):
    (tmp_path / "a_file").write_text("x")
    rc, err = cli(capsys, "evaluate", "--data", nyu_dir, "--limit", 1, "--out", tmp_path / "a_file")
    one_line_error(err, "a_file")
    if not _writable("/sys"):  # sysfs refuses new folders even to root: a read-only place to write to
        rc, err = cli(capsys, "evaluate", "--data", nyu_dir, "--limit", 1, "--out", "/sys/depthscope-out")
        one_line_error(err, "/sys/depthscope-out")
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    rc, err = cli(capsys, "explain", "--image", tmp_path / "tiny.png", "--out", tmp_path / "e")
    one_line_error(err, "tiny.png: image is 1x1; at least 2x2 is needed")
    rc, err = cli(capsys, "explain", "--image", tmp_path, "--out", tmp_path / "e")
    one_line_error(err, f"{tmp_path}: is a directory, not a file")
    Image.new("RGB", (3000, 3000)).save(tmp_path / "bomb.png")  # 9 M pixels: 9x the limit set below
    Image.new("RGB", (1200, 1000)).save(tmp_path / "big.png")  # 1.2 M: Pillow itself only warns below 2x
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 1_000_000  # the same check Pillow makes at 89 M pixels, at a size a test can write
    try:
        for name in ("bomb.png", "big.png"):
            rc, err = cli(capsys, "explain", "--image", tmp_path / name, "--out", tmp_path / "e")
            one_line_error(err, name, "decompression bomb", "raise PIL.Image.MAX_IMAGE_PIXELS")
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _writable(path: str) -> bool:
    probe = Path(path) / "depthscope-probe"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def test_a_full_disk_is_one_line_and_keeps_finished_rows(tmp_path, nyu_dir, capsys):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root, or no mount permission) to fill a disk")
    try:
        out = small / "eval"
        assert cli(capsys, "evaluate", "--data", nyu_dir, "--limit", 2, "--out", out)[0] == 0
        (small / "filler").write_bytes(b"\0" * (64 * 1024 - len(b"x")))  # the rest of the disk
    except OSError:
        pass  # full already: what follows is the point
    try:
        rc, err = cli(capsys, "evaluate", "--data", nyu_dir, "--limit", 2, "--out", small / "again")
        assert rc == 2
        one_line_error(err, str(small / "again"), "No space left on device")
        assert len(rows_of(out / "per_image.csv")) == 2  # the finished run's rows are still there
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_weight_lookup_at_the_filesystem_root_ends(monkeypatch):
    from depthscope.models import WeightSource, resolve_weights

    monkeypatch.setenv("DEPTHSCOPE_WEIGHTS", "/")
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="checkpoint no_such_checkpoint_4711.pth not found"):
        resolve_weights(WeightSource("no_such_checkpoint_4711.pth"), download=False)
    assert time.perf_counter() - t0 < 60


def test_results_get_the_users_umask(tmp_path, nyu_dir, capsys):
    old = os.umask(0o022)
    try:
        assert cli(capsys, "evaluate", "--data", nyu_dir, "--limit", 1, "--out", tmp_path)[0] == 0
    finally:
        os.umask(old)
    for name in ("metrics.json", "per_image.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert json.loads((tmp_path / "metrics.json").read_text())["n_images"] == 1
