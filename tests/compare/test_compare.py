"""``depthscope compare`` on the real METER-XXS weights and NYU images, against independent references: SciPy's
Spearman, scikit-image's SSIM, a set-based IoU, hand-computed depth agreement, and a model whose output is
exactly twice METER's (its maps are twice METER's, its Infidelity 4 times: a power of two scales float32 values
without rounding, so the drops of Infidelity, differences of nearly equal mean depths, scale exactly too)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from cli_errors import one_line_error
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

import depthscope as ds
from depthscope.cli import main
from depthscope.compare import depth_agreement, map_agreement
from depthscope.errors import InputError
from depthscope.models import wrap
from depthscope.ops.stats import top_fraction_iou


def test_map_agreement_equals_scipy_skimage_and_set_iou():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(48, 64, generator=g)
    b = a + 0.5 * torch.rand(48, 64, generator=g)
    got = map_agreement(a, b)
    assert got["spearman"] == pytest.approx(spearmanr(a.flatten(), b.flatten()).statistic, abs=1e-9)

    def norm(t):
        return ((t - t.min()) / (t.max() - t.min())).numpy().astype(np.float64)

    ref = structural_similarity(norm(a), norm(b), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)  # fmt: skip
    assert got["ssim"] == pytest.approx(ref, abs=1e-5)
    k = round(0.1 * a.numel())
    top_a = set(np.argsort(-a.flatten().numpy(), kind="stable")[:k])
    top_b = set(np.argsort(-b.flatten().numpy(), kind="stable")[:k])
    assert got["top10_iou"] == pytest.approx(len(top_a & top_b) / len(top_a | top_b), abs=1e-12)
    assert 0.1 < got["top10_iou"] < 1


def test_top_fraction_iou_by_hand():
    a = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    b = torch.tensor([5.0, 0.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0])
    # top 30 %: a {0, 1, 2}, b {9, 0, 2}: 2 shared of 4
    assert top_fraction_iou(a, b, 0.3) == 0.5
    with pytest.raises(ValueError, match="different shapes"):
        top_fraction_iou(a, b[:5])


def test_depth_agreement_by_hand_and_on_shared_pixels_only():
    a = torch.tensor([[2.0, 4.0], [1.0, 0.0]])
    b = torch.tensor([[3.0, 4.0], [0.5, 7.0]])  # (0, 1) is left out: A predicts nothing there
    got = depth_agreement(a, b)
    assert got["depth_rmse"] == pytest.approx(((1.0 + 0.0 + 0.25) / 3) ** 0.5, abs=1e-12)
    assert got["depth_abs_rel"] == pytest.approx((0.5 + 0.0 + 0.5) / 3, abs=1e-12)


class Scaled(nn.Module):
    """METER's network with its output times ``factor``: depth, maps and Infidelity scale exactly."""

    def __init__(self, net: nn.Module, factor: float) -> None:
        super().__init__()
        self.net, self.factor = net, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) * self.factor


@pytest.fixture(scope="module")
def meter():
    return ds.load_model("meter-xxs-nyu")


def scaled(meter, factor: float = 2.0, input_size=None):
    pp = meter.preprocessing
    return wrap(Scaled(meter.net, factor), input_size or pp.input_size, pp.mean, pp.std, unit=pp.unit,
                name=f"meter-x{factor}")  # fmt: skip


CFG = ds.AssessConfig(methods=("saliency",), metrics=("af_depth_correlation", "infidelity"), n_perturbations=16)


def test_compare_a_scaled_model_against_hand_derived_changes(meter, nyu, tmp_path):
    b = scaled(meter)
    summary = ds.compare(meter, b, nyu, CFG, tmp_path, limit=2)
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["model"], r["reference"], r["method"], r["image"]) for r in rows] == [
        ("meter-x2.0", "meter-xxs-nyu", "saliency", nyu.key(i)) for i in range(2)
    ]
    for i, r in enumerate(rows):
        with torch.no_grad():
            d = meter(nyu[i].image[None])[0, 0].double()
        assert float(r["depth_rmse"]) == pytest.approx(float(d.pow(2).mean().sqrt()), rel=1e-6)
        assert float(r["depth_abs_rel"]) == pytest.approx(1.0, rel=1e-6)
        # the maps are twice METER's: rank, SSIM and top-10 % agreement are perfect
        assert float(r["spearman"]) == pytest.approx(1.0, abs=1e-6)
        assert float(r["ssim"]) == pytest.approx(1.0, abs=1e-4)
        assert float(r["top10_iou"]) == pytest.approx(1.0, abs=1e-3)
        # a correlation with depth is scale-free; Infidelity is a squared error in m^2: 2^2 times. Its depth
        # differences f(x) - f(x - I) under noise of std 0.01 cancel most digits of float32 depths of ~3 m, and
        # the two models' perturbed batches may run other CPU kernels: 0.17 % apart was seen on a loaded machine
        assert float(r["af_depth_correlation_change"]) == pytest.approx(0.0, abs=1e-6)
        assert float(r["infidelity_b"]) == pytest.approx(4 * float(r["infidelity_a"]), rel=1e-2)
    (s,) = summary
    assert (s["model"], s["reference"], s["n_images"]) == ("meter-x2.0", "meter-xxs-nyu", 2)
    assert s["spearman_better"] == "higher" and s["depth_rmse_unit"] == "m" and s["infidelity_change_better"] == "lower"
    assert (tmp_path / "figures" / f"{nyu.key(0)}.png").stat().st_size > 0
    assert not (tmp_path / "figures" / f"{nyu.key(1)}.png").exists()  # figures=1


def test_compare_resumes_and_refuses_other_settings(meter, nyu, tmp_path):
    b = scaled(meter)
    ds.compare(meter, b, nyu, CFG, tmp_path, limit=1)
    first = (tmp_path / "results.csv").read_text()
    ds.compare(meter, b, nyu, CFG, tmp_path, limit=2)
    again = (tmp_path / "results.csv").read_text()
    assert again.startswith(first) and len(again.splitlines()) == 3
    other = ds.AssessConfig(methods=("saliency",), metrics=("af_depth_correlation",))
    with pytest.raises(InputError, match="other settings"):
        ds.compare(meter, b, nyu, other, tmp_path, limit=2)


def test_compare_refuses_other_units_and_gradients_of_int8_and_states_resampling(meter, nyu, tmp_path, capsys):
    pp = meter.preprocessing
    relative = wrap(meter.net, pp.input_size, pp.mean, pp.std, output="relative", name="rel")
    with pytest.raises(InputError, match=r"cannot compare meter-xxs-nyu \(depth\) with rel \(relative\)"):
        ds.compare(meter, relative, nyu, CFG, tmp_path / "rel", limit=1)
    frozen = meter.with_info(name="frozen")
    object.__setattr__(frozen, "float_twin", meter)  # what an int8 model is: no gradients
    with pytest.raises(InputError, match="frozen runs int8 kernels.*saliency cannot run"):
        ds.compare(meter, frozen, nyu, CFG, tmp_path / "int8", limit=1)
    assert not (tmp_path / "int8").exists()  # refused before anything is written
    bigger = scaled(meter, 1.0, input_size=(256, 320))
    capsys.readouterr()
    rows = ds.compare(meter, bigger, nyu, CFG, tmp_path / "size", limit=1)
    assert "meter-xxs-nyu resizes images to 192x256, meter-x1.0 to 256x320" in capsys.readouterr().err
    assert rows[0]["n_images"] == 1 and rows[0]["depth_rmse_mean"] > 0 and -1 <= rows[0]["spearman_mean"] < 1


@pytest.mark.parametrize(
    "argv, parts",
    [
        (["--model", "meter-xxs-nyu"], ["compare takes two models", "got 1"]),
        (["--model", "meter-xxs-nyu", "--model", "meter-xxs-nyu", "--figures", "-1"], ["--figures must be >= 0"]),
        (["--model", "meter-xxs-nyu", "--model", "meter-xxs-nyu", "--limit", "0"], ["--limit must be >= 1"]),
        (["--model", "meter-xxs-nyu", "--model", "meter-xxs-nyu", "--methods", "nope"], ["nope"]),
        (["--model", "meter-xxs-nyu", "--model", "nope/model.safetensors"], ["nope/model.safetensors"]),
    ],
)
def test_cli_bad_input_is_one_line(argv, parts, tmp_path, capsys):
    assert main(["compare", *argv, "--out", str(tmp_path / "c")]) == 2
    one_line_error(capsys.readouterr().err, *parts)


def test_cli_compare_then_pareto_over_cost_and_agreement(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--model", "meter-xxs-nyu", "--model", "meter-xxs-nyu", "--methods", "saliency,random",
            "--metrics", "af_depth_correlation", "--limit", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "af_depth_correlation A -> B" in printed and "spearman" in printed
    prof = tmp_path / "prof"
    assert main(["profile", "--model", "meter-xxs-nyu", "--counts-only", "--out", str(prof)]) == 0
    par = tmp_path / "par"
    base = ["pareto", "--profile", str(prof / "profile.json"), "--summary", str(out / "summary.csv"), "--x", "macs",
            "--y", "spearman", "--out", str(par)]  # fmt: skip
    assert main(base) == 2  # two methods in the summary: which one?
    one_line_error(capsys.readouterr().err, "several methods (random, saliency)", "--method")
    assert main([*base, "--method", "saliency"]) == 0
    (row,) = list(csv.DictReader(open(par / "pareto.csv")))
    assert row["model"] == "meter-xxs-nyu" and float(row["spearman"]) == pytest.approx(1.0, abs=1e-6)


def test_map_agreement_leaves_out_pixels_outside_the_mask():
    g = torch.Generator().manual_seed(1)
    a, b = torch.zeros(40, 60), torch.zeros(40, 60)
    a[10:30, 5:45] = torch.rand(20, 40, generator=g)
    b[10:30, 5:45] = torch.rand(20, 40, generator=g)  # unrelated inside; both 0 outside, as outside a KITTI crop
    mask = torch.zeros(40, 60, dtype=torch.bool)
    mask[10:30, 5:45] = True
    inside = map_agreement(a[10:30, 5:45], b[10:30, 5:45])
    assert map_agreement(a, b, mask) == pytest.approx(inside, abs=1e-12)
    assert abs(inside["spearman"]) < 0.15
    assert map_agreement(a, b)["spearman"] > 0.5  # the shared zeros alone would make them "agree"


def test_default_methods_are_those_both_models_run_and_named_ones_are_kept(tmp_path, nyu_dir, int8_checkpoint, capsys):
    from depthscope.cli import main

    out = tmp_path / "cmp"
    rc = main(["compare", "--model", f"meter-xxs-nyu,{int8_checkpoint}", "--data", str(nyu_dir),  # --model A,B
               "--limit", "1", "--metrics", "af_depth_correlation", "--figures", "0", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "comparing attention_rollout only, not saliency, integrated_gradients" in captured.err
    methods = {r["method"] for r in csv.DictReader(open(out / "summary.csv"))}
    assert methods == {"attention_rollout"}
    rc = main(["compare", "--model", "meter-xxs-nyu", "--model", str(int8_checkpoint), "--data", str(nyu_dir),
               "--limit", "1", "--methods", "saliency", "--out", str(tmp_path / "named")])  # fmt: skip
    assert rc == 2 and "no gradients: saliency cannot run" in capsys.readouterr().err  # named: never dropped
