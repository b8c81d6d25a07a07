import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from depthscope.data import open_dataset
from depthscope.errors import InputError


def write_nyu_mat(path, images, depths):
    """The labeled .mat as MATLAB v7.3 stores it and h5py reads it: images (N,3,W,H) uint8, depths (N,W,H)."""
    with h5py.File(path, "w") as f:
        f["images"] = images.transpose(0, 3, 2, 1)  # (N,H,W,3) -> (N,3,W,H)
        f["depths"] = depths.transpose(0, 2, 1)


def test_nyu_labeled_mat_and_eigen_split(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 12, 16, 3), dtype=np.uint8)
    deps = rng.uniform(0.5, 9, (5, 12, 16)).astype(np.float32)
    write_nyu_mat(tmp_path / "nyu_depth_v2_labeled.mat", imgs, deps)
    scipy.io.savemat(tmp_path / "splits.mat", {"testNdxs": np.array([[2], [5]]), "trainNdxs": np.array([[1]])})
    ds = open_dataset(tmp_path / "nyu_depth_v2_labeled.mat", "nyu")
    assert len(ds) == 2
    s = ds[1]  # frame 5 (1-based) -> index 4
    assert s.name == "nyu_0005"
    np.testing.assert_allclose(s.image.permute(1, 2, 0).numpy() * 255, imgs[4], atol=1e-4)
    np.testing.assert_allclose(s.depth.numpy(), deps[4])
    (tmp_path / "splits.mat").unlink()
    with pytest.raises(InputError, match="splits.mat"):
        open_dataset(tmp_path / "nyu_depth_v2_labeled.mat", "nyu")


def test_kitti_eigen_layout(tmp_path):
    img_rel = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    gt_rel = "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    (tmp_path / img_rel).parent.mkdir(parents=True)
    (tmp_path / "gt" / gt_rel).parent.mkdir(parents=True)
    Image.new("RGB", (20, 10), (10, 20, 30)).save(tmp_path / img_rel)
    gt = np.zeros((10, 20), dtype=np.uint16)
    gt[5, 5] = 256 * 12  # 12 m
    Image.fromarray(gt).save(tmp_path / "gt" / gt_rel)
    split = tmp_path / "eigen_test_files_with_gt.txt"
    split.write_text(f"{img_rel} {gt_rel} 721.5377\n2011_09_26/x/image_02/data/1.png None 721.5377\n")
    from depthscope.data import KittiEigenDataset

    ds = KittiEigenDataset(tmp_path, split, gt_root=tmp_path / "gt")
    assert len(ds) == 1
    s = ds[0]
    assert s.depth[5, 5].item() == 12.0 and (s.depth > 0).sum() == 1


def test_pairs_folder_without_csv_natural_order(tmp_path):
    for i in (10, 2):
        Image.new("RGB", (4, 4)).save(tmp_path / f"image_{i}.png")
        np.save(tmp_path / f"depth_{i}.npy", np.full((4, 4), float(i), dtype=np.float32))
    ds = open_dataset(tmp_path, "pairs")
    assert [s.name for s in ds] == ["image_2", "image_10"]
    assert ds[1].depth.max() == 10.0  # npy depth is metres
