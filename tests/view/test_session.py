"""The explorer's computations (no browser): targets from page controls, errors shown in the page, two models
side by side, curves equal to the assessment's, and the app's own click handler."""

import json

import pytest
import torch

import depthscope as ds
from depthscope.errors import DepthscopeError, InputError
from depthscope.view import Explorer

pytestmark = pytest.mark.xdist_group("view")  # one worker: the explorer tests share the int8 checkpoint


@pytest.fixture(scope="module")
def explorer(meter_nyu, nyu_dir):
    ex = Explorer([meter_nyu], nyu_dir)
    ex.select(0)
    return ex


def test_page_controls_become_targets_and_bad_ones_are_one_message(explorer):
    assert explorer.target_spec("pixel", y=10, x=20) == "pixel:10,20"
    assert explorer.target_spec("box", box="300, 400, 100, 200") == "box:100,200,300,400"  # any two corners
    assert explorer.target_spec("cell", grid=4, cell=15) == "grid:4#15"
    with pytest.raises(InputError, match="outside the 480x640 image"):
        explorer.target_spec("box", box="0,0,500,100")
    with pytest.raises(InputError, match="outside the 480x640 image"):
        explorer.target_spec("pixel", y=100, x=700)  # a click on the colourbar
    with pytest.raises(InputError, match="type y0,x0,y1,x1"):
        explorer.target_spec("box", box="1,2,3")
    with pytest.raises(InputError, match="cell 16 is not in a 4x4 grid"):
        explorer.target_spec("cell", grid=4, cell=16)


def test_a_grid_cell_panel_is_that_cell_of_explain(explorer, meter_nyu, nyu):
    panel = explorer.explain("grid:2#3", ["saliency"])["meter-xxs-nyu"]
    ref = ds.explain(meter_nyu, nyu[0].image, "saliency", target="grid:2")["saliency"].magnitude[3]
    assert torch.allclose(panel.maps["saliency"].magnitude[0], ref, rtol=1e-5, atol=1e-12)
    with torch.no_grad():
        depth = meter_nyu(nyu[0].image[None])[0, 0]
    assert panel.target_depth_m == pytest.approx(float(depth[240:, 320:].mean()), rel=1e-5)
    cmd = explorer.command("grid:2#3", ["saliency"])
    assert cmd.endswith("--methods saliency --target grid:2 --cell 3")


def test_curves_of_a_mean_target_map_equal_the_assessment(explorer, meter_nyu, nyu):
    from depthscope.assess import AssessConfig, assess_image

    panels = explorer.explain("mean", ["saliency"])
    shown = explorer.curves(panels)["meter-xxs-nyu/saliency"]
    cfg = AssessConfig(methods=("saliency",), metrics=("curves", "af_depth_correlation"))  # blur, 8-px patches
    ((_, row),) = assess_image(meter_nyu, nyu[0].image, cfg, seed=0)
    assert shown["af_perturbation"] == pytest.approx(row["af_perturbation"], abs=1e-6)
    assert shown["af_depth_correlation"] == pytest.approx(row["af_depth_correlation"], abs=1e-6)
    assert json.loads(row["morf_curve"]) == pytest.approx(shown["morf"], abs=1e-5)


def test_int8_beside_fp32_agreement_and_refusals_in_the_page(meter_nyu, nyu_dir, int8_checkpoint):
    ex = Explorer([meter_nyu], nyu_dir, models_dir=[int8_checkpoint.parent.parent])
    ex.select(1)
    with pytest.raises(DepthscopeError, match="nope.safetensors"):
        ex.compare_with(str(int8_checkpoint.parent / "nope.safetensors"))
    assert list(ex.by_name) == ["meter-xxs-nyu"]  # nothing changed
    assert ex.compare_with(int8_checkpoint) == ["meter-xxs-nyu", "meter-xxs-nyu+int8"]
    panels = ex.explain("mean", ["attention_rollout"])
    agree = ex.agreement(panels)
    a, b = ex.prediction("meter-xxs-nyu"), ex.prediction("meter-xxs-nyu+int8")
    assert agree["depth_rmse_m"] == pytest.approx(float(((a - b) ** 2).mean().sqrt()), rel=1e-6)
    assert 0.5 < agree["attention_rollout_spearman"] <= 1.0  # int8 keeps the transformers in fp32
    assert 0 < agree["attention_rollout_top10_iou"] <= 1.0 and 0 < agree["attention_rollout_ssim"] <= 1.0
    with pytest.raises(InputError, match="int8 kernels, which have no gradients"):
        ex.explain("mean", ["saliency"])
    assert ex.maps_view(panels).shape[0] == 2 * 480  # one row per model


def test_the_apps_click_handler_gives_the_panel(meter_nyu, nyu_dir, nyu):
    gr = pytest.importorskip("gradio", reason="the explorer needs the [view] extra")
    from depthscope.view import app

    demo = app([meter_nyu], nyu_dir)
    h = demo.handlers
    h["session"](None).select(0)
    evt = gr.SelectData(None, {"index": [320, 240], "value": None, "selected": True})
    maps, stats, command, files, status = h["click"](evt, ["saliency"], "", None, progress=lambda *a, **k: None)
    info = json.loads(stats)["models"]["meter-xxs-nyu"]
    assert info["target"] == "pixel:240,320" and "target depth" in status
    with torch.no_grad():
        assert info["target_depth_m"] == pytest.approx(float(meter_nyu(nyu[0].image[None])[0, 0, 240, 320]), rel=1e-5)
    assert maps.shape[0] == 480 and command.startswith("depthscope explain")
    assert len(files) == 2
    bad = h["box"]("0,0,900,900", ["saliency"], "", None, progress=lambda *a, **k: None)
    assert bad[-1].startswith("⚠") and "outside the 480x640 image" in bad[-1]


def test_the_explorers_metrics_equal_evaluate_with_the_depth_groups(explorer, meter_nyu, nyu_dir):
    from depthscope.metrics.evaluate import evaluate

    res = evaluate(meter_nyu, nyu_dir, limit=1, metrics="standard,boundary,binned,normals,pointcloud")
    shown = explorer.metrics(meter_nyu.name)
    for k in ("rmse", "abs_rel", "boundary_f1", "chamfer", "normal_median_deg", "rmse_0_2m"):
        assert shown[k] == pytest.approx(float(res.per_image[0][k]), rel=1e-6, abs=1e-9), k
