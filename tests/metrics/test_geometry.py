"""Boundary, geometry and binned depth metrics on synthetic scenes with known answers (a near square before a
wall, tilted planes), the nearest-point search against SciPy's KD-tree, and the groups in ``evaluate``."""

import math

import numpy as np
import pytest
import torch

from depthscope.errors import InputError, UnknownNameError
from depthscope.metrics.align import align_prediction, apply_alignment
from depthscope.metrics.boundary import boundary_scores, depth_boundary_errors, depth_edges
from depthscope.metrics.geometry import (
    binned_errors,
    nearest_distances,
    normal_errors,
    planarity_errors,
    point_cloud_errors,
    point_map,
)
from depthscope.output.depth import Intrinsics

K = Intrinsics(40.0, 40.0, 23.5, 15.5)  # a 32x48 camera


def square_scene(shift: int = 0) -> torch.Tensor:
    d = torch.full((8, 8), 2.0)
    d[2:6, 2 + shift : 6 + shift] = 1.0
    return d


def test_boundary_f1_by_hand():
    gt = square_scene()
    assert boundary_scores(gt, gt) == {"boundary_f1": 1.0, "boundary_recall": 1.0}
    assert boundary_scores(5 * gt, gt)["boundary_f1"] == 1.0  # scale-invariant
    # the square one column to the right: its left and right edges share nothing with the ground truth's, its top
    # and bottom edges 3 of 4 pairs each, at every threshold (the ratio 2 exceeds 1.25):
    # recall = precision = (0 + 3/4 + 0 + 3/4) / 4 = 0.375
    s = boundary_scores(square_scene(1), gt)
    assert s["boundary_f1"] == pytest.approx(0.375) and s["boundary_recall"] == pytest.approx(0.375)
    assert boundary_scores(torch.full((8, 8), 2.0), gt)["boundary_f1"] == 0.0  # no edge predicted
    weak = gt.clone()
    weak[2:6, 2:6] = 2.0 / 1.1  # a ratio of 1.1: an edge at the 4 thresholds up to 1.0944..., not above
    t = np.linspace(1.05, 1.25, 10)
    assert boundary_scores(weak, gt)["boundary_recall"] == pytest.approx(t[t < 1.1].sum() / t.sum())


def test_depth_boundary_errors_on_a_step_and_by_hand():
    g = np.zeros((9, 9), bool)
    g[:, 4] = True
    p = np.zeros((9, 9), bool)
    p[:, 6] = True
    assert depth_boundary_errors(p, g) == {"dbe_accuracy": 2.0, "dbe_completeness": 2.0}
    assert depth_boundary_errors(np.zeros_like(g), g) == {"dbe_accuracy": 10.0, "dbe_completeness": 10.0}
    step = torch.ones(32, 32)
    step[:, 16:] = 3.0
    edges = depth_edges(step)
    assert edges[:, 14:18].any() and not edges[:, :12].any()  # Canny finds the step, nothing else
    assert depth_boundary_errors(edges, edges) == {"dbe_accuracy": 0.0, "dbe_completeness": 0.0}


def plane_depth(theta_deg: float, distance: float = 3.0) -> torch.Tensor:
    """Depth of the plane n . X = -distance, n = (sin t, 0, -cos t): tilted by t about the camera's y axis."""
    t = math.radians(theta_deg)
    n = torch.tensor([math.sin(t), 0.0, -math.cos(t)], dtype=torch.float64)
    rays = point_map(torch.ones(32, 48), K)  # depth 1: the rays (x/z, y/z, 1)
    return (-distance / (rays @ n)).float()


def test_normals_of_planes_by_hand():
    valid = torch.ones(32, 48, dtype=torch.bool)
    flat, tilted = plane_depth(0.0), plane_depth(30.0)
    same = normal_errors(tilted, tilted, K, valid)
    assert same["normal_mean_deg"] == pytest.approx(0.0, abs=1e-3) and same["normal_11"] == 1.0
    off = normal_errors(flat, tilted, K, valid)
    assert off["normal_median_deg"] == pytest.approx(30.0, abs=0.01) and off["normal_22"] == 0.0


def test_planarity_by_hand():
    valid = torch.ones(32, 48, dtype=torch.bool)
    planes = {"wall": torch.ones(32, 48, dtype=torch.bool)}
    got = planarity_errors(plane_depth(0.0), plane_depth(20.0), K, valid, planes)
    assert got["planarity_flatness"] == pytest.approx(0.0, abs=1e-5)  # a plane is flat
    assert got["planarity_orientation_deg"] == pytest.approx(20.0, abs=1e-3)
    # against the annotated normal (the fronto-parallel wall faces -z): the prediction's 20 deg tilt
    annotated = planarity_errors(plane_depth(20.0), plane_depth(0.0), K, valid, planes, {"wall": (0.0, 0.0, -1.0)})
    assert annotated["planarity_orientation_deg"] == pytest.approx(20.0, abs=1e-3)
    small = {"wall": torch.zeros(32, 48, dtype=torch.bool)}
    small["wall"][:4, :4] = True  # 1 % of the image: below iBims' 5 %, not scored
    assert math.isnan(planarity_errors(plane_depth(0.0), plane_depth(0.0), K, valid, small)["planarity_flatness"])
    bumpy = plane_depth(0.0).clone()
    bumpy[::2] += 0.02  # every other row 2 cm further: about 1 cm RMS from the best plane
    assert planarity_errors(bumpy, bumpy, K, valid, planes)["planarity_flatness"] == pytest.approx(0.01, rel=0.05)


def test_nearest_distances_equal_scipy_kdtree_and_point_cloud_scores():
    from scipy.spatial import cKDTree

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(700, 3, generator=g), torch.rand(500, 3, generator=g)
    ours = nearest_distances(a, b, chunk=64).numpy()
    theirs, _ = cKDTree(b.numpy().astype(np.float64)).query(a.numpy().astype(np.float64))
    assert np.abs(ours - theirs).max() < 1e-12
    valid = torch.ones(32, 48, dtype=torch.bool)
    d = plane_depth(10.0)
    same = point_cloud_errors(d, d, K, valid, tau=0.01)
    assert same["chamfer"] == 0.0 and same["fscore"] == 1.0
    far = point_cloud_errors(d + 1.0, d, K, valid, tau=0.05)  # every point 1 m deeper along its ray
    assert far["fscore"] == 0.0 and far["chamfer"] > 0.5


def test_binned_errors_by_hand():
    gt = torch.tensor([[1.0, 1.5], [3.0, 8.0]])
    pred = torch.tensor([[1.1, 1.5], [2.0, 8.0]])
    got = binned_errors(pred, gt, torch.ones(2, 2, dtype=torch.bool), [0, 2, 4, 6, 10])
    assert got["rmse_0_2m"] == pytest.approx(math.sqrt(0.01 / 2))
    assert got["abs_rel_0_2m"] == pytest.approx((0.1 / 1.0) / 2)
    assert got["rmse_2_4m"] == pytest.approx(1.0) and got["abs_rel_2_4m"] == pytest.approx(1 / 3)
    assert math.isnan(got["rmse_4_6m"]) and got["rmse_6_10m"] == 0.0


@pytest.mark.parametrize("method", ["median", "lstsq-depth", "lstsq-disparity"])
def test_whole_map_alignment_equals_the_valid_pixels_alignment(method):
    g = torch.Generator().manual_seed(1)
    gt = 1 + 4 * torch.rand(100, generator=g, dtype=torch.float64)
    pred = 0.5 * gt + 0.2 + 0.05 * torch.rand(100, generator=g, dtype=torch.float64)
    aligned, fitted = align_prediction(pred, gt, method)
    assert torch.allclose(apply_alignment(pred, method, fitted), aligned)


def test_groups_in_evaluate_on_the_real_model(nyu_dir, tmp_path, meter_nyu):
    from depthscope.metrics.evaluate import evaluate

    res = evaluate(meter_nyu, nyu_dir, limit=2, metrics="standard,boundary,normals,pointcloud,binned",
                   metric_options={"binned": {"bins": [0, 3, 10]}}, out=tmp_path / "ev")  # fmt: skip
    for c in ("boundary_f1", "normal_mean_deg", "chamfer", "fscore", "rmse_0_3m", "abs_rel_3_10m"):
        assert c in res.metrics and c in res.per_image[0]
    assert 0 <= res.metrics["fscore"] <= 1 and res.metrics["chamfer"] > 0
    assert res.settings["metrics"]["pointcloud"] == {"tau": 0.05, "max_points": 10000}
    header = (tmp_path / "ev" / "per_image.csv").read_text().splitlines()[0]
    assert "boundary_f1" in header and "rmse_0_3m" in header


def test_bad_groups_are_one_line(tmp_path, kitti_dir=None):
    from depthscope.data.sources import find_data
    from depthscope.metrics.evaluate import evaluate

    kitti = find_data("kitti_sample")
    with pytest.raises(InputError, match="needs the camera"):
        evaluate("meter-xxs-kitti", kitti, metrics="normals")
    with pytest.raises(UnknownNameError, match="unknown depth metric group 'edges'"):
        evaluate("meter-xxs-kitti", kitti, metrics="edges")
    with pytest.raises(InputError, match="needs the dataset's planes annotations"):
        evaluate("meter-xxs-kitti", kitti, metrics="planarity", fov=80.0)
    with pytest.raises(InputError, match="has no option 'tau'|has no option tau"):
        evaluate("meter-xxs-kitti", kitti, metrics="boundary", metric_options={"boundary": {"tau": 1}})
    with pytest.raises(InputError, match="depth bins must be rising"):
        evaluate("meter-xxs-kitti", kitti, metrics="binned", metric_options={"binned": {"bins": [5, 2]}})
