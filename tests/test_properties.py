"""Property-based checks (hypothesis) of the command line as a careless or hostile user drives it: any numeric
option value and any list file of paths ends in exit 0, 1 or 2 with at most one error line, never a traceback, and
nothing is ever written outside ``--out``."""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from cli_errors import error_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from depthscope.cli import main

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# numbers as a user types them: boundaries, garbage, overflow, and ordinary values
NUMBER = st.one_of(
    st.integers(-3, 5).map(str),
    st.sampled_from(["0", "-0", "1e400", "-1e400", "nan", "inf", "-inf", "", "1.5", "0.0001", "abc", "1,2", "3e-320"]),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:g}"),
)


def run(capsys, argv) -> tuple[int, str]:
    """``depthscope ARGV`` in process: its status (argparse's usage errors exit 2) and stderr."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse: a value of the wrong type is a usage line and status 2
        rc = e.code
    return rc, capsys.readouterr().err


def check_clean(rc: int, err: str) -> None:
    assert rc in (0, 1, 2), (rc, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    assert len(error_lines(err)) <= 1, err[-2000:]


def tree(root: Path, skip: Path) -> dict[str, str]:
    """Every entry under ``root`` except under ``skip``: files by sha256, links by target, folders by name."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p == skip or skip in p.parents:
            continue
        if p.is_symlink():
            out[str(p)] = f"link->{os.readlink(p)}"
        elif p.is_file():
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[str(p)] = "dir"
    return out


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory, nyu_dir):
    """Two NYU images at 48x64 (a forward costs milliseconds) and their depth maps."""
    d = tmp_path_factory.mktemp("tiny")
    for k in (0, 1):
        Image.open(nyu_dir / f"image_{k}.png").resize((64, 48)).save(d / f"image_{k}.png")
        Image.open(nyu_dir / f"depth_{k}.png").resize((64, 48), Image.NEAREST).save(d / f"depth_{k}.png")
    return d


@SETTINGS
@given(scale=NUMBER, batch=NUMBER, fov=NUMBER, intrinsics=st.lists(NUMBER, min_size=0, max_size=5))
def test_predict_numeric_options_never_trace_back(capsys, tiny_images, scale, batch, fov, intrinsics):
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["predict", "--images", tiny_images / "image_0.png", "--out", Path(tmp) / "out", "--depth-scale", scale,
                "--batch", batch, "--format", "npy,png16,ply"]  # fmt: skip
        camera = ["--intrinsics", ",".join(intrinsics)] if intrinsics else ["--fov", fov]
        check_clean(*run(capsys, [*argv, *camera]))


@SETTINGS
@given(limit=NUMBER, lo=NUMBER, hi=NUMBER, scale=NUMBER)
def test_evaluate_numeric_options_never_trace_back(capsys, tiny_images, limit, lo, hi, scale):
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["evaluate", "--data", tiny_images, "--dataset", "nyu", "--out", Path(tmp) / "out", "--limit", limit,
                "--min-depth", lo, "--max-depth", hi, "--depth-scale", scale]  # fmt: skip
        check_clean(*run(capsys, argv))


# the entries a list file may hold: inside the list's folder, climbing out of it, absolute, through a link that
# leads out, missing, empty, a folder, odd names; a header row may come first, in either column order
ENTRY = st.sampled_from([
    "image_0.png", "./image_1.png", "sub/../image_0.png", "../victim/photo.png", "../../victim/photo.png",
    "{victim}/photo.png", "{victim}/../victim/photo.png", "link/photo.png", "missing.png", "", ".", "..", "sub",
    "image_0.jpg", "photo_color.png", "{victim}", "/", "image 0.png", "ümlaut.png",
])  # fmt: skip
HEADER = st.sampled_from(["", "image\n", "image_path\n", "depth_path,image_path\n", "rgb,depth\n"])


@SETTINGS
@given(header=HEADER, entries=st.lists(ENTRY, min_size=1, max_size=5), formats=st.sampled_from(
    ["npy", "npy,png16,color", "png16,color,ply"]))  # fmt: skip
def test_list_files_never_write_outside_out(capsys, tiny_images, header, entries, formats):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        victim, work = root / "victim", root / "work" / "lists"
        victim.mkdir()
        (work / "sub").mkdir(parents=True)
        shutil.copy(tiny_images / "image_0.png", victim / "photo.png")
        shutil.copy(tiny_images / "image_1.png", victim / "photo_color.png")
        for name in ("image_0.png", "image_1.png", "image_0.jpg", "photo_color.png", "ümlaut.png", "image 0.png"):
            shutil.copy(tiny_images / "image_0.png", work / name)
        (work / "link").symlink_to(victim)
        rows = [e.format(victim=victim) for e in entries]
        (work / "list.csv").write_text(header + "".join(f"{r},\n" if "," in header else f"{r}\n" for r in rows))
        out = root / "out"
        before = tree(root, out)
        rc, err = run(capsys, ["predict", "--images", work / "list.csv", "--out", out, "--format", formats,
                               "--fov", "60"])  # fmt: skip
        check_clean(rc, err)
        assert tree(root, out) == before  # nothing outside --out was created, changed or removed
        for p in out.rglob("*") if out.exists() else ():
            assert out.resolve() in p.resolve().parents or p.resolve() == out.resolve()
