"""``depthscope optimize`` end to end on the real METER-XXS: every method writes a checkpoint that evaluate,
profile and explain load by path; block-wise distillation improves the new blocks on unseen crops."""

import copy
import json

import pytest
import torch
from cli_errors import one_line_error

from depthscope.cli import main
from depthscope.models import load_model
from depthscope.models.mixers import replace_attention
from depthscope.optimize.distill import batch_source, blockwise_loss, end_to_end_loss
from depthscope.optimize.images import image_paths, load_images
from depthscope.optimize.losses import BalancedLoss
from depthscope.optimize.train import train_phase

TINY = ["--steps", "2", "--e2e-steps", "1", "--batch", "2", "--calib-images", "2"]


@pytest.mark.parametrize("method", ["pyra", "prune", "int8"])
def test_optimize_then_evaluate_profile_explain(tmp_path, nyu_dir, method):
    out = tmp_path / method
    assert main(["optimize", "--method", method, "--out", str(out), *TINY]) == 0
    report = json.loads((out / "optimize.json").read_text())
    ckpt = str(out / "model.safetensors")
    assert report["checkpoint"] == ckpt and report["recipe"]["base"] == "meter-xxs-nyu"
    # the method's own defaults of the method-dependent options, recorded as used (README: pruning only)
    used = {k: report["config"][k] for k in ("feature_weight", "e2e_average_from")}
    assert used == ({"feature_weight": 100.0, "e2e_average_from": 0.5} if method == "prune" else
                    {"feature_weight": 0.0, "e2e_average_from": 1.0})  # fmt: skip
    assert (
        main(["evaluate", "--model", ckpt, "--data", str(nyu_dir), "--limit", "2", "--out", str(tmp_path / "e")]) == 0
    )
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["model"] == f"meter-xxs-nyu+{method}" + ("0.3" if method == "prune" else "")
    assert metrics["rmse"] < (1.5 if method != "prune" else 5.0)  # 2 fine-tuning steps cannot heal a 30 % prune
    assert main(["profile", "--model", ckpt, "--repeats", "2", "--warmup", "1", "--batches", "1",
                 "--out", str(tmp_path / "p")]) == 0  # fmt: skip
    prof = json.loads((tmp_path / "p" / "profile.json").read_text())
    row = next(iter(prof.values()))
    assert row["params"] == report["after"]["params"] and row["macs"] == report["after"]["macs"]
    assert main(["explain", "--model", ckpt, "--method", "attention_rollout", "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "explain.png").is_file()
    if method == "int8":  # no gradients through int8 kernels: one clear error
        assert main(["explain", "--model", ckpt, "--method", "saliency", "--out", str(tmp_path / "y")]) == 2


def test_prune_report_states_the_drop(tmp_path):
    assert main(["optimize", "--method", "prune", "--ratio", "0.4", "--out", str(tmp_path), *TINY]) == 0
    after = json.loads((tmp_path / "optimize.json").read_text())["after"]
    assert after["params_ratio"] == pytest.approx(0.6, abs=0.05) and after["macs_ratio"] == pytest.approx(0.6, abs=0.05)


def test_distill_needs_a_compatible_student(tmp_path):
    assert main(["optimize", "--method", "distill", "--out", str(tmp_path)]) == 2
    assert main(["optimize", "--method", "distill", "--student", "meter-xxs-kitti", "--out", str(tmp_path)]) == 2
    assert main(["optimize", "--method", "distill", "--student", "meter-xs", "--out", str(tmp_path), *TINY]) == 0
    assert load_model(str(tmp_path / "model.safetensors")).name == "meter-xs<-meter-xxs-nyu"


def test_plain_state_dict_is_refused_by_path(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(Exception, match="not a `depthscope optimize` checkpoint"):
        load_model(str(tmp_path / "plain.safetensors"))


def test_blockwise_distillation_improves_blocks_on_unseen_crops(meter_nyu, tmp_path):
    teacher = meter_nyu.net
    student = copy.deepcopy(teacher)
    blocks = replace_attention(student, "meta")
    images = load_images(image_paths("builtin"))
    train = blockwise_loss(teacher, student, blocks, batch_source(meter_nyu, images, 4, seed=0))
    held_out = blockwise_loss(teacher, student, blocks, batch_source(meter_nyu, images, 8, seed=99))
    with torch.no_grad():
        before = held_out(0).item()
    params = [p for n in blocks for p in dict(student.named_modules())[n].parameters()]
    train_phase("blockwise", student, params, train, 40, tmp_path / "s.pt", lr=1e-3, progress=False)
    with torch.no_grad():
        after = held_out(0).item()
    assert after < 0.8 * before


def test_feature_term_adds_each_blocks_relative_mse_on_its_own_activations():
    """End-to-end loss with ``feature_weight``: the balanced depth loss plus w x sum over blocks of
    ``|s_b - t_b|^2 / |t_b|^2`` (means over elements), each network's block fed its own previous layer, written
    out here layer by layer."""
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Conv2d(6, 6, 1), torch.nn.Conv2d(6, 1, 1)
    )
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(2, 3, 8, 8)
    t0, s0 = teacher[0](x), student[0](x)
    t1, s1 = teacher[1](t0), student[1](s0)  # block "1": the student's own input s0, not the teacher's t0
    depth = BalancedLoss()(student[2](s1), teacher[2](t1)).item()
    feat = (((s1 - t1) ** 2).mean() / (t1**2).mean()).item() + (((s0 - t0) ** 2).mean() / (t0**2).mean()).item()
    plain = end_to_end_loss(teacher, student, lambda step: x, BalancedLoss(), ["0", "1"])(0).item()
    weighted = end_to_end_loss(teacher, student, lambda step: x, BalancedLoss(), ["0", "1"], 10.0)(0)
    assert plain == pytest.approx(depth, rel=1e-5)  # weight 0: depth only, blocks or not
    assert weighted.item() == pytest.approx(depth + 10.0 * feat, rel=1e-5)
    weighted.backward()
    assert student[0].weight.grad is not None and teacher[0].weight.grad is None


def test_optimised_checkpoint_can_be_optimised_again(tmp_path, nyu):
    assert main(["optimize", "--method", "pyra", "--out", str(tmp_path / "a"), *TINY]) == 0
    src = str(tmp_path / "a" / "model.safetensors")
    assert main(["optimize", "--model", src, "--method", "int8", "--out", str(tmp_path / "b"), *TINY]) == 0
    report = json.loads((tmp_path / "b" / "optimize.json").read_text())
    assert [s["method"] for s in report["recipe"]["steps"]] == ["pyra", "int8"]
    both = load_model(str(tmp_path / "b" / "model.safetensors"))
    pyra = load_model(src)
    x = nyu[0].image.unsqueeze(0)
    with torch.no_grad():
        a, b = pyra(x), both(x)
    assert both.name == "meter-xxs-nyu+pyra+int8"
    assert ((a - b).abs().mean() / a.mean()).item() < 0.08  # int8 of the pyra model, not of the original


def test_rerun_resumes_and_other_settings_are_refused(tmp_path, capsys):
    base = ["optimize", "--method", "prune", "--batch", "2", "--save-every", "1", "--steps", "1"]
    # the last step's weights (no averaging): a finished phase may continue
    args = [*base, "--out", str(tmp_path), "--e2e-average-from", "1"]
    assert main([*args, "--e2e-steps", "2"]) == 0
    first = json.loads((tmp_path / "optimize.json").read_text())["log"]["end_to_end"]
    assert main([*args, "--e2e-steps", "3"]) == 0  # continues the finished 2 end-to-end steps by one
    state = torch.load(tmp_path / "train_end_to_end.pt", weights_only=True)
    assert state["step"] == 3 and state["losses"][:2] == pytest.approx([first["first_loss"], first["last_loss"]])
    assert main([*args, "--e2e-steps", "3", "--ratio", "0.5"]) == 2
    assert "training state of other settings" in capsys.readouterr().err
    # pruning's default averages the last half of the steps, which depends on their number: another is refused
    averaged = [*base, "--out", str(tmp_path / "avg")]
    assert main([*averaged, "--e2e-steps", "2"]) == 0
    assert main([*averaged, "--e2e-steps", "3"]) == 2
    one_line_error(capsys.readouterr().err, "training state of other settings", "average_from=0.5 steps=2")
