"""Hugging Face depth models end to end on tiny randomly initialised models built from configs here (no
download): evaluate (with alignment), explain (ViT rollout over the target's patch tokens), assess, profile."""

import csv
import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from hf_models import IMAGENET, save_tiny_depth_anything  # noqa: E402

from depthscope.cli import main  # noqa: E402
from depthscope.errors import InputError  # noqa: E402
from depthscope.explain import explain  # noqa: E402
from depthscope.metrics.depth import valid_mask  # noqa: E402
from depthscope.models import load_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_depth_anything(tmp_path_factory):
    """Depth Anything, 4 layers of width 32 with 2 heads (:func:`save_tiny_depth_anything`)."""
    return save_tiny_depth_anything(tmp_path_factory.mktemp("tiny_da"))


def test_loads_as_relative_disparity_with_processor_size(tiny_depth_anything):
    model = load_model(f"hf:{tiny_depth_anything}")
    pp = model.preprocessing
    # 480x640 -> scale 56/480 on both axes (the smaller change) -> 56 x 74.7 -> nearest multiples of 14.
    assert pp.input_size == (56, 70) and pp.output == "disparity" and pp.mean == tuple(IMAGENET["image_mean"])
    assert model(torch.rand(1, 3, 480, 640)).shape == (1, 1, 480, 640)


def test_evaluate_aligns_in_disparity_space(tmp_path, tiny_depth_anything, nyu):
    assert (
        main(
            [
                "evaluate",
                "--model",
                f"hf:{tiny_depth_anything}",
                "--data",
                str(nyu.root),
                "--limit",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["align"] == "lstsq-disparity" and metrics["n_images"] == 2
    row = next(csv.DictReader(open(tmp_path / "per_image.csv")))
    # Independent fit: numpy's least squares of 1/gt on the raw prediction over the same valid pixels.
    model = load_model(f"hf:{tiny_depth_anything}")
    s = nyu[0]
    with torch.no_grad():
        pred = model(s.image.unsqueeze(0))[0, 0].double()
    mask = valid_mask(s.depth, 1e-3, 10.0, "eigen")
    scale, shift = np.polyfit(pred[mask].numpy(), 1.0 / s.depth[mask].double().numpy(), 1)
    assert float(row["scale"]) == pytest.approx(scale, rel=1e-6)
    assert float(row["shift"]) == pytest.approx(shift, rel=1e-6, abs=1e-9)


def test_explain_rollout_uses_target_patch_tokens(tmp_path, tiny_depth_anything, nyu):
    model = load_model(f"hf:{tiny_depth_anything}")
    image = nyu[0].image.unsqueeze(0)
    left = explain(model, image, "attention_rollout", target="box:0,0,480,320")["attention_rollout"].signed
    right = explain(model, image, "attention_rollout", target="box:0,320,480,640")["attention_rollout"].signed
    assert left.shape[-2:] == (480, 640) and left.min() >= 0
    assert left[..., :320].sum() > left[..., 320:].sum() and right[..., 320:].sum() > right[..., :320].sum()
    assert (
        main(
            [
                "explain",
                "--model",
                f"hf:{tiny_depth_anything}",
                "--method",
                "saliency,integrated_gradients,attention_rollout",
                "--option",
                "integrated_gradients.n_steps=4",
                "--option",
                "integrated_gradients.tolerance=null",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (tmp_path / "explain.png").is_file()


def test_assess_and_profile_end_to_end(tmp_path, tiny_depth_anything, nyu):
    name = f"hf:{tiny_depth_anything}"
    assert (
        main(
            [
                "assess",
                "--model",
                name,
                "--data",
                str(nyu.root),
                "--methods",
                "saliency,attention_rollout,random",
                "--limit",
                "1",
                "--n-perturbations",
                "4",
                "--out",
                str(tmp_path / "assess"),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "assess" / "results.csv")))
    assert len(rows) == 3 and all(np.isfinite(float(r["af_perturbation"])) for r in rows)
    assert (
        main(
            [
                "profile",
                "--model",
                name,
                "--warmup",
                "1",
                "--repeats",
                "2",
                "--batches",
                "1",
                "--out",
                str(tmp_path / "profile"),
            ]
        )
        == 0
    )
    row = json.loads((tmp_path / "profile" / "profile.json").read_text())[name]
    net = load_model(name).net
    assert row["params"] == sum(p.numel() for p in net.parameters())
    assert row["network_input_size"] == [56, 70] and row["macs"] > 0


def test_glpn_is_metric_and_rollout_says_why_not(tmp_path):
    cfg = transformers.GLPNConfig(
        num_encoder_blocks=4,
        depths=[1, 1, 1, 1],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 16, 32, 64],
        num_attention_heads=[1, 1, 2, 2],
        decoder_hidden_size=16,
        max_depth=10,
    )
    transformers.GLPNForDepthEstimation(cfg).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"size_divisor": 32, "do_rescale": True}))
    model = load_model(f"hf:{tmp_path}")
    assert model.preprocessing.output == "depth" and model.preprocessing.mean is None
    assert model.preprocessing.input_size == (480, 640) and model.info.eval.max_depth == 10
    with pytest.raises(InputError, match="spatial-reduction"):
        explain(model, torch.rand(1, 3, 64, 96), "attention_rollout")


def test_missing_directory_is_one_clear_error(tmp_path):
    from depthscope.errors import CheckpointError

    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(f"hf:{tmp_path / 'nope'}")


@pytest.fixture
def remote_code_model(tmp_path, tiny_depth_anything):
    """A model folder whose config names its own code (``auto_map`` -> evil.py); running that code would create
    the file ``RAN`` beside it."""
    import shutil

    d = tmp_path / "remote"
    shutil.copytree(tiny_depth_anything, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForDepthEstimation": "evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "evil.py").write_text(f"open({str(d / 'RAN')!r}, 'w').write('ran')\n")
    return d


def run_in_terminal(argv: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin, stdout and stderr (as a user at a shell): a prompt would wait
    for an answer there; returns the exit status and everything printed."""
    import os
    import pty
    import select
    import subprocess
    import time

    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    out, end = b"", time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    if proc.poll() is None:  # waiting for an answer: the failure this test exists for
        proc.kill()
    os.close(leader)
    return proc.wait(), out.decode(errors="replace")


def test_remote_code_is_one_line_without_a_prompt_in_a_terminal(remote_code_model, nyu_dir):
    import sys

    argv = [sys.executable, "-c", "import sys; from depthscope.cli import main; sys.exit(main())", "evaluate",
            "--model", f"hf:{remote_code_model}", "--data", str(nyu_dir), "--limit", "1"]  # fmt: skip
    rc, text = run_in_terminal(argv)
    assert rc == 2, text
    assert "needs its own code (evil.py, named by auto_map in its config.json), which depthscope never runs" in text
    assert "[y/N]" not in text and "trust_remote_code" not in text and "Traceback" not in text
    assert not (remote_code_model / "RAN").exists()


def test_an_optimised_checkpoint_may_not_lead_to_remote_code(tmp_path, remote_code_model):
    from depthscope.errors import CheckpointError
    from depthscope.models.optimized import save_optimized

    path = save_optimized(tmp_path / "model.safetensors", torch.nn.Conv2d(3, 1, 1), f"hf:{remote_code_model}", [],
                          "evil+int8")  # fmt: skip
    with pytest.raises(CheckpointError, match="needs its own code"):
        load_model(str(path))
    assert not (remote_code_model / "RAN").exists()


def test_weights_that_do_not_fit_the_config_name_the_keys(tmp_path, tiny_depth_anything):
    import shutil

    from depthscope.errors import CheckpointError

    d = tmp_path / "neck"
    shutil.copytree(tiny_depth_anything, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["neck_hidden_sizes"] = cfg["neck_hidden_sizes"][:3]  # one reassemble stage fewer than the weights hold
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"do not match its config.json: missing keys: none; unexpected keys: "
                       r"neck\.convs\.3\.weight"):  # fmt: skip
        load_model(f"hf:{d}")
