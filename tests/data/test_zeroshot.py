"""Readers of the zero-shot benchmarks on small files written here in each format (no downloads), each with a
malformed file that must be one clear error naming it."""

import struct

import numpy as np
import pytest
import torch
from PIL import Image

from depthscope.data import open_dataset
from depthscope.data.zeroshot import SINTEL_TAG, read_dpt, sunrgbd_depth
from depthscope.errors import InputError

H, W = 24, 32
RNG = np.random.default_rng(0)


def rgb(path, h=H, w=W, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, format=fmt)


def depth_map():
    return (1.0 + 4.0 * RNG.random((H, W))).astype(np.float32)


def test_diode(tmp_path):
    scan = tmp_path / "val" / "indoors" / "scene_00019" / "scan_00183"
    rgb(scan / "00019_00183_indoors_000_010.png")
    d = depth_map()
    np.save(scan / "00019_00183_indoors_000_010_depth.npy", d[..., None])
    mask = np.ones((H, W), np.float32)
    mask[0, :5] = 0
    np.save(scan / "00019_00183_indoors_000_010_depth_mask.npy", mask)
    ds = open_dataset(tmp_path, "diode")
    s = ds[0]
    assert len(ds) == 1 and s.name == "val/indoors/scene_00019/scan_00183/00019_00183_indoors_000_010"
    assert torch.equal(s.depth[0, :5], torch.zeros(5)) and torch.allclose(s.depth[1], torch.from_numpy(d[1]))
    assert ds.min_depth == 0.6 and ds.max_depth == 350.0
    np.save(scan / "00019_00183_indoors_000_010_depth_mask.npy", np.ones((H, W + 1), np.float32))
    with pytest.raises(InputError, match="_depth.npy: depth .* and mask .* must be one"):
        ds[0]


def test_ibims_with_edges_planes_and_camera(tmp_path):
    from scipy.io import savemat

    d = depth_map()
    invalid = np.ones((H, W), np.uint8)
    invalid[2, 3] = 0  # iBims: 0 marks an invalid pixel
    wall = np.zeros((H, W), np.uint8)
    wall[:10] = 1
    data = {"rgb": RNG.integers(0, 255, (H, W, 3), dtype=np.uint8), "depth": d, "edges": np.eye(H, W, dtype=np.uint8),
            # iBims stores MATLAB's transposed K with a 1-based principal point; planes are labelled 1, 2, ... with
            # their parameters (normal in columns 4-6, in its frame: x right, y forward, z up)
            "calib": np.array([[500.0, 0, 0], [0, 501.0, 0], [16.5, 12.5, 1]]), "mask_invalid": invalid,
            "mask_transp": np.ones((H, W), np.uint8), "mask_wall": wall,
            "mask_wall_paras": np.array([[0, 0, 0, 0, 0.0, -1.0, 0.0]]), "mask_table": np.zeros((H, W), np.uint8),
            "mask_floor": np.zeros((H, W), np.uint8)}  # fmt: skip
    savemat(tmp_path / "corridor_01.mat", {"data": data})
    s = open_dataset(tmp_path, "ibims")[0]
    assert s.name == "corridor_01" and s.intrinsics == (500.0, 501.0, 15.5, 11.5)
    assert s.depth[2, 3] == 0 and s.depth[2, 4] == pytest.approx(float(d[2, 4]))
    assert set(s.annotations["planes"]) == {"wall_0"} and s.annotations["edges"][0, 0]
    assert s.annotations["plane_normals"]["wall_0"] == (0.0, -0.0, -1.0)  # facing the camera: -z here
    savemat(tmp_path / "corridor_01.mat", {"other": np.ones(3)})
    with pytest.raises(InputError, match="corridor_01.mat: not an iBims-1 .mat"):
        open_dataset(tmp_path, "ibims")[0]


def test_eth3d_raw_float_depth_with_inf_and_colmap_camera(tmp_path):
    scene = tmp_path / "courtyard"
    rgb(scene / "images" / "dslr_images" / "DSC_0286.JPG", fmt="JPEG")
    d = depth_map()
    d[0, 0] = np.inf  # ETH3D marks missing depth as inf
    gt = scene / "ground_truth_depth" / "dslr_images" / "DSC_0286.JPG"
    gt.parent.mkdir(parents=True)
    d.astype("<f4").tofile(gt)
    cams = scene / "dslr_calibration_undistorted" / "cameras.txt"
    cams.parent.mkdir(parents=True)
    cams.write_text(f"# Camera list\n0 PINHOLE {W} {H} 30.5 30.6 15.5 11.5\n")
    s = open_dataset(tmp_path, "eth3d")[0]
    assert s.depth[0, 0] == 0 and s.intrinsics == (30.5, 30.6, 15.5, 11.5)
    d[:-1].astype("<f4").tofile(gt)
    with pytest.raises(InputError, match="DSC_0286.JPG: 736 float32 values, not the 24x32"):
        open_dataset(tmp_path, "eth3d")[0]


def write_dpt(path, d, tag=SINTEL_TAG):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<fii", tag, d.shape[1], d.shape[0]) + d.astype("<f4").tobytes())


def test_sintel_dpt_and_cam(tmp_path):
    d = depth_map()
    rgb(tmp_path / "final" / "alley_1" / "frame_0001.png")
    write_dpt(tmp_path / "depth" / "alley_1" / "frame_0001.dpt", d)
    cam = tmp_path / "camdata_left" / "alley_1" / "frame_0001.cam"
    cam.parent.mkdir(parents=True)
    k = np.array([[40.0, 0, 16.0], [0, 41.0, 12.0], [0, 0, 1]])
    cam.write_bytes(struct.pack("<f", SINTEL_TAG) + k.astype("<f8").tobytes() + np.zeros((3, 4)).tobytes())
    s = open_dataset(tmp_path, "sintel")[0]
    assert s.name == "alley_1/frame_0001" and torch.allclose(s.depth, torch.from_numpy(d))
    assert s.intrinsics == (40.0, 41.0, 16.0, 12.0)
    assert np.array_equal(read_dpt(tmp_path / "depth" / "alley_1" / "frame_0001.dpt"), d)
    write_dpt(tmp_path / "depth" / "alley_1" / "frame_0001.dpt", d, tag=1.0)
    with pytest.raises(InputError, match="frame_0001.dpt: not a Sintel .dpt file"):
        open_dataset(tmp_path, "sintel")[0]


def test_scannet_colour_resized_to_the_depth(tmp_path):
    scene = tmp_path / "scene0707_00"
    rgb(scene / "color" / "0.jpg", h=2 * H, w=2 * W, fmt="JPEG")
    mm = (1000 * depth_map()).astype(np.uint16)
    (scene / "depth").mkdir(parents=True)
    Image.fromarray(mm).save(scene / "depth" / "0.png")
    (scene / "intrinsic").mkdir()
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", np.array([[29.0, 0, 15.5, 0], [0, 29.5, 11.5, 0],
                                                                      [0, 0, 1, 0], [0, 0, 0, 1]]))  # fmt: skip
    s = open_dataset(tmp_path, "scannet")[0]
    assert tuple(s.image.shape) == (3, H, W) and s.intrinsics == (29.0, 29.5, 15.5, 11.5)
    assert torch.allclose(s.depth, torch.from_numpy(mm / 1000.0).float())
    Image.fromarray((mm // 256).astype(np.uint8)).save(scene / "depth" / "0.png")
    with pytest.raises(InputError, match="0.png: depth must be a 16-bit single-channel PNG"):
        open_dataset(tmp_path, "scannet")[0]


def test_sunrgbd_rotated_bits_and_camera(tmp_path):
    scene = tmp_path / "kv2" / "kinect2data" / "000002_2014-05-26_14-23-37"
    rgb(scene / "image" / "0000103.jpg", fmt="JPEG")
    mm = np.full((H, W), 2500, np.uint16)
    mm[0, 0] = 9000  # beyond SUN RGB-D's 8 m cap
    stored = ((mm.astype(np.uint32) << 3) | (mm.astype(np.uint32) >> 13)) & 0xFFFF
    (scene / "depth").mkdir()
    Image.fromarray(stored.astype(np.uint16)).save(scene / "depth" / "0000103.png")
    (scene / "intrinsics.txt").write_text("529.5 0 365.0\n0 529.5 265.0\n0 0 1\n")
    s = open_dataset(tmp_path, "sunrgbd")[0]
    assert s.depth[1, 1] == pytest.approx(2.5) and s.depth[0, 0] == pytest.approx(8.0)
    assert s.intrinsics == (529.5, 529.5, 365.0, 265.0)
    assert sunrgbd_depth(np.array([[(1500 << 3) & 0xFFFF]]))[0, 0] == 1.5
    (scene / "intrinsics.txt").write_text("529.5 0 365.0\n0 529.5 265.0\n")
    with pytest.raises(InputError, match="intrinsics.txt: intrinsics.txt must hold a 3x3 matrix"):
        open_dataset(tmp_path, "sunrgbd")[0]


def test_wrong_layout_and_unknown_name_are_one_line(tmp_path, nyu_dir):
    with pytest.raises(InputError, match="not a diode layout"):
        open_dataset(nyu_dir, "diode")
    with pytest.raises(InputError, match="unknown dataset 'middlebury'; valid datasets: kitti, nyu, pairs, diode"):
        open_dataset(nyu_dir, "middlebury")


def test_evaluate_uses_the_benchmark_caps_and_camera(tmp_path):
    from depthscope.metrics.evaluate import evaluate

    scene = tmp_path / "scene0707_00"
    rgb(scene / "color" / "0.jpg", h=48, w=64, fmt="JPEG")
    (scene / "depth").mkdir(parents=True)
    Image.fromarray((1000 * (1 + RNG.random((48, 64)))).astype(np.uint16)).save(scene / "depth" / "0.png")
    (scene / "intrinsic").mkdir()
    np.savetxt(scene / "intrinsic" / "intrinsic_depth.txt", np.diag([58.0, 58.0, 1.0, 1.0]))
    res = evaluate("meter-xxs-nyu", tmp_path, dataset="scannet", metrics="standard,pointcloud")
    assert res.settings["min_depth"] == 0.1 and res.settings["max_depth"] == 10.0
    assert 0 <= res.metrics["fscore"] <= 1
