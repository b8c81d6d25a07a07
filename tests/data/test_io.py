import numpy as np
import pytest
from PIL import Image

from depthscope.data import open_dataset, read_depth, read_image
from depthscope.errors import InputError


def test_reads_nyu_sample(nyu):
    s = nyu[0]
    assert s.image.shape == (3, 480, 640) and 0 <= s.image.min() and s.image.max() <= 1
    assert s.depth.shape == (480, 640)
    assert 0.8 < s.depth[s.depth > 0].min() and s.depth.max() < 10.0  # mm / 1000 = metres (values 900..9961)


@pytest.mark.parametrize(
    ("mode", "problem"),
    [("RGBA", "'RGBA'"), ("L", "'L'"), ("I;16", "'I;16'"), ("P", "'P'")],
)
def test_image_modes_refused_with_file_name(tmp_path, mode, problem):
    p = tmp_path / f"img_{mode.replace(';', '')}.png"
    Image.new(mode, (8, 8)).save(p)
    with pytest.raises(InputError, match=f"{p.name}.*{problem}"):
        read_image(p)


def test_corrupt_and_missing_image(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match="broken.png: not a readable image"):
        read_image(bad)
    with pytest.raises(InputError, match="missing.png: file does not exist"):
        read_image(tmp_path / "missing.png")


def test_depth_problems(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [1.0, 1.0]], dtype=np.float32))
    with pytest.raises(InputError, match="nan.npy: depth contains NaN"):
        read_depth(tmp_path / "nan.npy")
    np.save(tmp_path / "zero.npy", np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(InputError, match="zero.npy: depth map has no valid"):
        read_depth(tmp_path / "zero.npy")
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb_depth.png")
    with pytest.raises(InputError, match="rgb_depth.png: depth image mode 'RGB'"):
        read_depth(tmp_path / "rgb_depth.png")
    Image.fromarray(np.full((4, 4), 2560, dtype=np.uint16)).save(tmp_path / "k.png")
    assert read_depth(tmp_path / "k.png", 256.0).unique().item() == 10.0


def test_size_mismatch_and_empty_folder(tmp_path):
    Image.new("RGB", (8, 6)).save(tmp_path / "image_0.png")
    Image.fromarray(np.full((5, 8), 1000, dtype=np.uint16)).save(tmp_path / "depth_0.png")
    with pytest.raises(InputError, match=r"depth_0.png: depth map is \(5, 8\) but the image is \(6, 8\)"):
        open_dataset(tmp_path, "pairs")[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty dataset"):
        open_dataset(empty, "pairs")
    Image.new("RGB", (8, 6)).save(tmp_path / "image_1.png")
    assert open_dataset(tmp_path, "pairs")[1].depth is None  # no depth_1: a sample without ground truth
