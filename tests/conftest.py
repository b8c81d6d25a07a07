"""Shared fixtures: the real METER-XXS weights and the NYU sample, found through the project's own lookup
(DEPTHSCOPE_WEIGHTS / DEPTHSCOPE_DATA), which default here to ../shared beside the checkout as in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
os.environ.setdefault("DEPTHSCOPE_WEIGHTS", str(SHARED / "weights"))
os.environ.setdefault("DEPTHSCOPE_DATA", str(SHARED / "data"))
# int8 networks run their reference graphs (the same int8 rounding, no 25 s compile per model); the compiled
# path is tested on its own (tests/models/test_quantized.py)
os.environ.setdefault("DEPTHSCOPE_INT8_COMPILE", "0")
os.environ.setdefault("DEPTHSCOPE_CACHE", str(ROOT / ".pytest_cache" / "no-weights-cache"))
# Under pytest-xdist (`-n 2`, the README's test command) each worker, and every CLI it starts, computes on one
# thread: two workers on two cores, no oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def nyu_dir() -> Path:
    from depthscope.data.sources import find_data

    return find_data("nyu_sample")


@pytest.fixture(scope="session")
def nyu(nyu_dir):
    from depthscope.data import open_dataset

    return open_dataset(nyu_dir, "nyu")


@pytest.fixture(scope="session")
def meter_nyu():
    from depthscope.models import load_model

    return load_model("meter-xxs-nyu")


@pytest.fixture
def two_scenes(tmp_path, nyu_dir) -> Path:
    """A CSV dataset of two scene folders that reuse the file names ``rgb_<i>.png`` (NYU sample 0-1 and 2-3):
    finished work must be keyed by the path, not the file name."""
    import shutil

    lines = []
    for scene, offset in (("scene_a", 0), ("scene_b", 2)):
        (tmp_path / scene).mkdir()
        for i in range(2):
            shutil.copy(nyu_dir / f"image_{offset + i}.png", tmp_path / scene / f"rgb_{i}.png")
            shutil.copy(nyu_dir / f"depth_{offset + i}.png", tmp_path / scene / f"depth_{i}.png")
            lines.append(f"{scene}/rgb_{i}.png,{scene}/depth_{i}.png")
    (tmp_path / "pairs.csv").write_text("image_path,depth_path\n" + "\n".join(lines) + "\n")
    return tmp_path / "pairs.csv"


@pytest.fixture(scope="session")
def small_image(nyu) -> torch.Tensor:
    """NYU sample 0 at half resolution (240x320): real content, quick gradients."""
    img = nyu[0].image.unsqueeze(0)
    return torch.nn.functional.interpolate(img, size=(240, 320), mode="bilinear", antialias=True).clamp(0, 1)


@pytest.fixture(scope="session")
def float32_noise():
    """:func:`measure_float32_noise`, as a fixture."""
    return measure_float32_noise


def measure_float32_noise(fmodel: torch.nn.Module, inputs: torch.Tensor) -> float:
    """The float32 rounding error of ``fmodel`` on ``inputs``: the largest |float32 - float64| output, measured
    on this machine. Two float32 implementations (other batch sizes, other kernels) differ by up to about twice
    this, which is what parity tolerances against Captum are derived from (not a guessed rtol)."""
    import copy

    ref = copy.deepcopy(fmodel).double()
    with torch.no_grad():
        return (fmodel(inputs).double() - ref(inputs.double())).abs().max().item()


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Debian Chromium driven by Selenium through the system chromedriver (no driver download), with
    the browser console log kept. CI installs both (.ci/run); elsewhere the test skips, saying why."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} / {CHROMEDRIVER} missing in CI: .ci/run installs chromium and chromium-driver")
        pytest.skip(f"no {CHROMIUM} and {CHROMEDRIVER} here: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the [test] extra")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    driver.set_window_size(1400, 1000)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def int8_checkpoint(tmp_path_factory, nyu_dir) -> Path:
    """METER-XXS-NYU quantised to int8 (calibrated on NYU images 5-9), written to a temporary folder."""
    from depthscope.optimize import OptimizeConfig, optimize

    out = tmp_path_factory.mktemp("int8")
    cfg = OptimizeConfig(calib_images=2, train_images=str(nyu_dir / "image_[5-9].png"))
    return Path(optimize("meter-xxs-nyu", "int8", out, cfg)["checkpoint"])
