"""``predict`` on the real METER-XXS weights and the NYU sample: every format, read back by independent readers
(PIL, numpy, a hand back-projection), the 16-bit PNGs scored through ``evaluate --predictions``, resume and bad
input."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from depthscope.cli import main
from depthscope.errors import InputError
from depthscope.metrics.evaluate import evaluate
from depthscope.models import wrap
from depthscope.output.depth import encode_png16, read_ply_points
from depthscope.predict import predict

NYU_K = "518.8579,519.4696,325.5824,253.7362"  # Kinect intrinsics of NYU Depth V2 (pixels)


@pytest.fixture(scope="module")
def all_formats(meter_nyu, nyu_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred")
    res = predict(meter_nyu, nyu_dir, out, "npy,png16,color,ply", 1000.0, NYU_K, batch=4)
    return res, out


def test_every_format_is_written_and_matches_the_model(all_formats, meter_nyu, nyu):
    res, out = all_formats
    assert (res.written, res.skipped, res.failed, res.png16_clipped) == (10, 0, [], 0)
    for i in (0, 9):
        with torch.no_grad():
            ref = meter_nyu(nyu[i].image[None])[0, 0].numpy()  # batch of 1, the predictions ran in batches of 4
        npy = np.load(out / f"image_{i}.npy")
        assert npy.dtype == np.float32 and npy.shape == (480, 640)
        assert np.abs(npy - ref).max() < 1e-4 * ref.max()  # float32 rounding of other batch compositions
        png = np.asarray(Image.open(out / f"image_{i}.png"))
        assert png.dtype == np.uint16
        assert np.abs(png.astype(np.float64) / 1000 - npy).max() <= 0.5e-3 + 1e-6  # rounded to the millimetre
        colour = Image.open(out / f"image_{i}_color.png")
        assert colour.mode == "RGB" and colour.height == 480 and colour.width > 640  # the colourbar is beside it
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert [r["image"] for r in rows] == [f"image_{i}" for i in range(10)]
    settings = json.loads((out / "predict.json").read_text())
    assert settings["unit"] == "m" and settings["depth_scale"] == 1000.0 and settings["model"] == "meter-xxs-nyu"


def test_ply_points_are_the_back_projection_by_hand(all_formats):
    _, out = all_formats
    depth = np.load(out / "image_3.npy")
    points, colours = read_ply_points((out / "image_3.ply").read_bytes())
    assert len(points) == int((depth > 0).sum()) == 480 * 640
    fx, fy, cx, cy = map(float, NYU_K.split(","))
    for v, u in ((0, 0), (100, 200), (479, 639)):
        z = float(depth[v, u])
        k = v * 640 + u  # every pixel is valid: row-major order
        assert points[k] == pytest.approx([(u - cx) * z / fx, (v - cy) * z / fy, z], rel=1e-6, abs=1e-6)
    assert colours.dtype == np.uint8 and colours.shape == (480 * 640, 3)


def test_ply_colours_are_the_image(all_formats, nyu_dir):
    _, out = all_formats
    _, colours = read_ply_points((out / "image_3.ply").read_bytes())
    image = np.asarray(Image.open(nyu_dir / "image_3.png").convert("RGB")).reshape(-1, 3)
    assert np.array_equal(colours, image)


def test_png16_read_back_by_evaluate_gives_the_same_metrics(meter_nyu, nyu_dir, tmp_path, capsys):
    assert main(["predict", "--images", str(nyu_dir), "--out", str(tmp_path / "p"), "--format", "png16"]) == 0
    direct = evaluate(meter_nyu, nyu_dir)
    rc = main(["evaluate", "--data", str(nyu_dir), "--dataset", "pairs", "--depth-scale", "1000", "--crop", "eigen",
               "--predictions", str(tmp_path / "p"), "--out", str(tmp_path / "e")])  # fmt: skip
    assert rc == 0
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert abs(saved["rmse"] - direct.metrics["rmse"]) < 1e-3
    assert abs(saved["abs_rel"] - direct.metrics["abs_rel"]) < 1e-3
    assert saved["predictions"] == str(tmp_path / "p")


def test_rerun_skips_finished_images_and_redoes_a_missing_file(meter_nyu, nyu_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        shutil.copy(nyu_dir / f"image_{i}.png", src / f"image_{i}.png")
    first = predict(meter_nyu, src, tmp_path / "o")
    (tmp_path / "o" / "image_1.png").unlink()
    again = predict(meter_nyu, src, tmp_path / "o")
    assert (first.written, again.written, again.skipped) == (3, 1, 2)
    assert len(list(csv.DictReader(open(tmp_path / "o" / "predictions.csv")))) == 3  # each image once
    with pytest.raises(InputError, match=r"other settings \(depth_scale\)"):
        predict(meter_nyu, src, tmp_path / "o", depth_scale=256.0)


def test_folder_structure_is_mirrored_and_an_unreadable_image_is_named(meter_nyu, nyu_dir, tmp_path, capsys):
    src = tmp_path / "scenes"
    for scene in ("kitchen", "office"):
        (src / scene).mkdir(parents=True)
        shutil.copy(nyu_dir / "image_0.png", src / scene / "rgb_0.png")  # the same file name in two folders
    (src / "office" / "broken.jpg").write_bytes(b"not a jpeg")
    rc = main(["predict", "--images", str(src), "--out", str(tmp_path / "o"), "--format", "npy"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "broken.jpg: not a readable image" in err and "Traceback" not in err
    assert (tmp_path / "o" / "kitchen" / "rgb_0.npy").is_file() and (tmp_path / "o" / "office" / "rgb_0.npy").is_file()


def test_png16_clips_and_counts_instead_of_wrapping():
    data, clipped = encode_png16(np.array([[70.0, 1.2346], [0.0, 65.535]]), 1000.0)
    import io

    values = np.asarray(Image.open(io.BytesIO(data)))
    assert values.tolist() == [[65535, 1235], [0, 65535]] and clipped == 1  # 70 m would wrap to 4464 in uint16


def test_relative_models_say_what_they_wrote(nyu_dir, tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3, padding=1), torch.nn.Softplus())
    model = wrap(net, (64, 64), output="disparity", name="toy-disparity")
    res = predict(model, nyu_dir / "image_0.png", tmp_path, "npy,png16")
    assert res.unit.startswith("disparity (relative")
    png = np.asarray(Image.open(tmp_path / "image_0.png"))
    assert png.min() == 0 and png.max() == 65535  # per-image min-max normalised
    assert json.loads((tmp_path / "predict.json").read_text())["unit"] == res.unit
    with pytest.raises(InputError, match="ply needs metric depth; toy-disparity predicts disparity"):
        predict(model, nyu_dir / "image_0.png", tmp_path / "p", "ply", fov=60)


def test_video_frames_are_predicted_one_by_one(meter_nyu, nyu_dir, tmp_path):
    av = pytest.importorskip("av", reason="video needs the [video] extra (PyAV)")
    frame = np.asarray(Image.open(nyu_dir / "image_0.png"))
    with av.open(str(tmp_path / "clip.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for k in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.roll(frame, 8 * k, 1), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    res = predict(meter_nyu, tmp_path / "clip.mp4", tmp_path / "o", "npy")
    assert res.written == 3
    assert sorted(p.name for p in (tmp_path / "o" / "clip").iterdir()) == [f"frame_{k:06d}.npy" for k in range(3)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--images", "{empty}"], "the folder holds no image"),
        (["--images", "{nyu}", "--format", "ply", "--intrinsics", "518,519,325"], "--intrinsics takes fx,fy,cx,cy"),
        (["--images", "{nyu}", "--format", "ply"], "needs the camera: --intrinsics"),
        (["--images", "{nyu}", "--format", "exr"], "valid formats are npy, png16, color, ply"),
        (["--images", "{nyu}", "--fov", "200"], "--fov takes the horizontal field of view"),
        (["--images", "{nyu}", "--batch", "0"], "--batch must be an integer >= 1"),
        (["--images", "{tmp}/*.webp"], "the pattern matches no image file"),
        (["--images", "{tmp}/nothing"], "no such file, folder or matching pattern"),
    ],
)
def test_bad_input_is_one_line(args, message, nyu_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    subs = {"{empty}": str(tmp_path / "empty"), "{nyu}": str(nyu_dir), "{tmp}": str(tmp_path)}
    args = [next((a.replace(k, v) for k, v in subs.items() if k in a), a) for a in args]
    assert main(["predict", *args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_out_inside_images_is_refused(nyu_dir, tmp_path, capsys):
    shutil.copy(nyu_dir / "image_0.png", tmp_path / "image_0.png")
    assert main(["predict", "--images", str(tmp_path), "--out", str(tmp_path / "depth")]) == 2
    assert "is inside --images" in capsys.readouterr().err


# ------------------------------------------------------------------ hostile inputs: nothing outside --out changes
def hashes(root, skip):
    """sha256 of every file under ``root`` outside ``skip`` (links are listed, not followed)."""
    import hashlib

    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest() if not p.is_symlink() else f"link->{p.readlink()}"
        for p in sorted(root.rglob("*"))
        if (p.is_file() or p.is_symlink()) and skip not in p.parents
    }


@pytest.fixture
def hostile(tmp_path, nyu_dir):
    """A victim folder of photos, and inputs that reach it: a list with ``../..`` and absolute entries, and a folder
    holding a symbolic link to one of them."""
    victim = tmp_path / "victim"
    victim.mkdir()
    for k, name in enumerate(("a.png", "b.png", "c.png", "c.npy")):
        shutil.copy(nyu_dir / f"image_{k}.png", victim / name)
    lists = tmp_path / "work" / "lists"
    lists.mkdir(parents=True)
    (lists / "list.csv").write_text(f"image\n../../victim/a.png\n{victim / 'b.png'}\n")
    folder = tmp_path / "work" / "imgs"
    folder.mkdir()
    shutil.copy(nyu_dir / "image_5.png", folder / "own.png")
    (folder / "c.png").symlink_to(victim / "c.png")
    return tmp_path


def test_hostile_lists_and_links_never_write_outside_out(hostile, meter_nyu, capsys):
    before = hashes(hostile, hostile / "out")
    for src, run in (("work/lists/list.csv", "csv"), ("work/imgs", "folder")):
        out = hostile / "out" / run
        rc = main(["predict", "--images", str(hostile / src), "--out", str(out), "--format", "npy,png16,color,ply",
                   "--fov", "60"])  # fmt: skip
        assert rc == 0, capsys.readouterr().err
    assert hashes(hostile, hostile / "out") == before  # every victim, link and input byte for byte as it was
    outside = (hostile / "victim").as_posix().lstrip("/")
    csv_out = {p.relative_to(hostile / "out" / "csv").as_posix() for p in (hostile / "out" / "csv").rglob("*.npy")}
    assert csv_out == {f"_outside/{outside}/a.npy", f"_outside/{outside}/b.npy"}
    assert {p.name for p in (hostile / "out" / "folder").glob("*.npy")} == {"own.npy", "c.npy"}
    rows = list(csv.DictReader(open(hostile / "out" / "folder" / "predictions.csv")))
    assert {r["image"] for r in rows} == {"own", "c"}


def test_evaluate_keeps_predictions_of_outside_images_inside_out(hostile, meter_nyu, nyu_dir):
    pairs = hostile / "work" / "pairs"
    pairs.mkdir()
    (pairs / "list.csv").write_text(
        f"image_path,depth_path\n{hostile / 'victim' / 'a.png'},\nimage_0.png,depth_0.png\n"
    )
    shutil.copy(nyu_dir / "image_0.png", pairs / "image_0.png")
    shutil.copy(nyu_dir / "depth_0.png", pairs / "depth_0.png")
    before = hashes(hostile, hostile / "out")
    res = evaluate(meter_nyu, pairs / "list.csv", out=hostile / "out")
    assert res.settings["n_without_gt"] == 1 and len(res.per_image) == 1
    assert hashes(hostile, hostile / "out") == before
    (saved,) = (hostile / "out" / "predictions").rglob("*.npy")
    assert saved.relative_to(hostile / "out" / "predictions").as_posix().startswith("_outside/")


def test_csv_header_in_any_order_is_a_header(tmp_path, nyu_dir):
    from depthscope.data import open_dataset

    for name in ("image_0.png", "depth_0.png"):
        shutil.copy(nyu_dir / name, tmp_path / name)
    (tmp_path / "swapped.csv").write_text("depth_path,image_path\ndepth_0.png,image_0.png\n")
    ds = open_dataset(tmp_path / "swapped.csv", "nyu")
    assert len(ds) == 1 and ds.pairs[0] == (tmp_path / "image_0.png", tmp_path / "depth_0.png")
    (tmp_path / "nameless.csv").write_text("depth_path,other\ndepth_0.png,x\n")
    with pytest.raises(InputError, match="nameless.csv: its header depth_path,other names no image column"):
        open_dataset(tmp_path / "nameless.csv", "nyu")


def test_outputs_that_would_collide_and_settings_that_store_nothing_are_refused(tmp_path, nyu_dir, meter_nyu):
    images = tmp_path / "imgs"
    images.mkdir()
    shutil.copy(nyu_dir / "image_0.png", images / "x.png")
    shutil.copy(nyu_dir / "image_1.png", images / "x_color.png")
    with pytest.raises(InputError, match=r"x.png's colour preview and .*x_color.png's 16-bit depth PNG would both be "
                       r"written to x_color.png"):  # fmt: skip
        predict(meter_nyu, images, tmp_path / "o1", "png16,color")
    assert predict(meter_nyu, images, tmp_path / "o2", "npy,png16").written == 2  # no preview: no collision
    shutil.copy(nyu_dir / "image_0.jpg" if (nyu_dir / "image_0.jpg").exists() else nyu_dir / "image_0.png",
                images / "x.jpg")  # fmt: skip
    with pytest.raises(InputError, match=r"x.jpg and .*x.png would share the output name 'x'|x.png and .*x.jpg would "
                       r"share the output name 'x'"):  # fmt: skip
        predict(meter_nyu, images, tmp_path / "o3")
    one = nyu_dir / "image_0.png"
    with pytest.raises(InputError, match=r"--depth-scale 0.01 stores every depth of .*image_0.png \(.* m\) as 0"):
        predict(meter_nyu, one, tmp_path / "o4", "png16", depth_scale=0.01)
    assert not list((tmp_path / "o4").glob("*.png"))
    with pytest.raises(InputError, match=r"principal point \(5000, 5000\) lies outside the 640x480 image"):
        predict(meter_nyu, one, tmp_path / "o5", "ply", intrinsics="2000,2000,5000,5000")
    with pytest.raises(InputError, match="points of .* are not finite"):
        predict(meter_nyu, one, tmp_path / "o6", "ply", intrinsics="1e-310,1e-310,320,240")


def test_videos_without_frames_are_skipped_with_one_line_each(tmp_path, nyu_dir, meter_nyu, capsys):
    av = pytest.importorskip("av", reason="video needs the [video] extra (PyAV)")
    folder = tmp_path / "clips"
    folder.mkdir()
    with av.open(str(folder / "audio.mp4"), "w") as c:  # an audio track, no video stream
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.rate = 16000
        for packet in [*s.encode(frame), *s.encode(None)]:
            c.mux(packet)
    (folder / "zero.mp4").write_bytes(b"")
    shutil.copy(nyu_dir / "image_0.png", folder / "photo.png")
    rc = main(["predict", "--images", str(folder), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "audio.mp4: holds no video stream (audio or data only) (skipped; the other images go on)" in err
    assert "zero.mp4: not a readable video, before its first frame" in err
    assert (tmp_path / "out" / "photo.npy").exists()


def test_a_rerun_with_other_images_is_refused_and_force_new_starts_afresh(tmp_path, nyu_dir, meter_nyu, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, k in ((a, 0), (b, 1)):
        folder.mkdir()
        shutil.copy(nyu_dir / f"image_{k}.png", folder / "image_0.png")  # the same key, other pixels
    out = tmp_path / "out"
    assert main(["predict", "--images", str(a), "--out", str(out)]) == 0
    first = np.load(out / "image_0.npy")
    assert main(["predict", "--images", str(b), "--out", str(out)]) == 2
    from cli_errors import one_line_error

    one_line_error(capsys.readouterr().err, f"holds results of {a} (1 files), not of {b} (1 files)", "--force-new")
    assert np.array_equal(np.load(out / "image_0.npy"), first)  # nothing of the first run was touched
    assert main(["predict", "--images", str(b), "--out", str(out), "--force-new"]) == 0
    (old,) = out.glob("previous-*")
    assert np.array_equal(np.load(old / "image_0.npy"), first)
    assert not np.array_equal(np.load(out / "image_0.npy"), first)
