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
