"""Structured pruning: removed channels are really gone (params and MACs drop by the ratio), and the pruned
network computes exactly what the original computes with those channels' consumer weights zeroed."""

import copy

import pytest
import torch
from cli_errors import one_line_error
from torch import nn

from depthscope.cli import main
from depthscope.efficiency.flops import count_macs
from depthscope.efficiency.params import count_params
from depthscope.errors import InputError
from depthscope.models import load_model
from depthscope.models.channels import layer_groups, meter_groups, prune_fraction, resize_like, resize_to_state
from depthscope.optimize.prune import prune_channels, prune_graph


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_params_and_macs_drop_by_the_ratio(meter_nyu, ratio):
    net = meter_nyu.net
    x = torch.zeros(1, 3, 192, 256)
    pruned, _ = prune_channels(net, ratio)
    assert 1 - count_params(pruned) / count_params(net) == pytest.approx(ratio, abs=0.05)
    assert 1 - count_macs(pruned, x).macs / count_macs(net, x).macs == pytest.approx(ratio, abs=0.05)


def test_pruned_equals_original_with_removed_channels_zeroed(meter_nyu, small_image):
    net = meter_nyu.net
    pruned = prune_fraction(net, 0.6)
    zeroed = copy.deepcopy(net)
    for g_orig, g_pruned in zip(meter_groups(zeroed), meter_groups(pruned), strict=True):
        n_keep = g_pruned.size
        keep = torch.sort(torch.topk(g_orig.importance(), n_keep).indices).values
        drop = torch.ones(g_orig.size, dtype=torch.bool)
        drop[keep] = False
        with torch.no_grad():
            for m in g_orig.consumers:
                m.weight[:, drop] = 0
    x = meter_nyu.prepare(small_image)
    with torch.no_grad():
        assert torch.allclose(pruned(x), zeroed(x), rtol=1e-4, atol=1e-3)


def test_resize_like_rebuilds_the_pruned_shapes(meter_nyu):
    pruned, _ = prune_channels(meter_nyu.net, 0.3)
    fresh = resize_like(copy.deepcopy(meter_nyu.net), pruned.state_dict())
    fresh.load_state_dict(pruned.state_dict())  # strict: every shape matches
    assert count_params(fresh) == count_params(pruned)


# ------------------------------------------------------------------ any network: torch-pruning's dependency graph
class Block(nn.Module):
    """A residual block of a foreign depth network: conv-BN-ReLU, depthwise conv-BN-ReLU, 1x1, plus the input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 1),
        )  # fmt: skip

    def forward(self, x):
        return x + self.body(x)


class Foreign(nn.Module):
    """Stem, two residual blocks, an MLP on the residual stream, a transposed-convolution head: nothing METER."""

    def __init__(self, c: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, stride=2, padding=1), nn.ReLU())
        self.blocks = nn.Sequential(Block(c), Block(c))
        self.mlp = nn.Sequential(nn.Conv2d(c, 4 * c, 1), nn.GELU(), nn.Conv2d(4 * c, c, 1))
        self.head = nn.Sequential(
            nn.ConvTranspose2d(c, 32, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 3, 1, 1)
        )

    def forward(self, x):
        y = self.blocks(self.stem(x))
        return nn.functional.softplus(self.head(y + self.mlp(y)))


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_depgraph_prunes_a_foreign_network_by_the_ratio_and_its_state_reloads(ratio):
    net, x = Foreign().eval(), torch.zeros(1, 3, 64, 96)
    pruned, _ = prune_graph(net, x, ratio)
    assert 1 - count_params(pruned) / count_params(net) == pytest.approx(ratio, abs=0.05)
    assert 1 - count_macs(pruned, x).macs / count_macs(net, x).macs == pytest.approx(ratio, abs=0.05)
    assert pruned.blocks[0].body[3].groups == pruned.blocks[0].body[3].out_channels < 128  # still depthwise
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = pruned(images)
    assert out.shape == (2, 1, 64, 96) and torch.isfinite(out).all()
    fresh = resize_to_state(Foreign().eval(), pruned.state_dict(), layer_groups(pruned))
    fresh.load_state_dict(pruned.state_dict())  # strict: every shape matches
    with torch.no_grad():
        assert torch.equal(fresh(images), out)


def test_depgraph_keeps_meters_attention_whole_and_reloads_from_its_checkpoint(meter_nyu, tmp_path):
    out = tmp_path / "dg"
    argv = ["optimize", "--method", "prune", "--prune-engine", "depgraph", "--ratio", "0.3", "--e2e-steps", "1",
            "--batch", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    pruned = load_model(str(out / "model.safetensors"))
    assert pruned.name == "meter-xxs-nyu+prune0.3-depgraph"  # not the name of METER's groups at the same ratio
    assert 1 - count_params(pruned.net) / count_params(meter_nyu.net) == pytest.approx(0.3, abs=0.05)
    for name, m in meter_nyu.net.named_modules():  # attention projections: widths tied to the head count
        if name.endswith(("fn.to_qkv", "fn.to_out.0")):
            assert pruned.net.get_submodule(name).weight.shape == m.weight.shape, name
    x = torch.rand(1, 3, 480, 640, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.isfinite(pruned(x)).all()
    assert len(pruned.attention_modules()) == len(meter_nyu.attention_modules())  # rollout still applies


def test_depgraph_bad_input():
    net, x = Foreign().eval(), torch.zeros(1, 3, 64, 96)
    for ratio in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match=r"pruning ratio must be in \(0, 1\)"):
            prune_graph(net, x, ratio)
    with pytest.raises(InputError, match=r"--prune-keep: 'nope' is not a module of the network"):
        prune_graph(net, x, 0.3, keep=["nope"])
    kept = prune_graph(net, x, 0.3, keep=["mlp.0"])[0]
    assert kept.mlp[0].out_channels == 512


@pytest.mark.parametrize(
    "argv, part",
    [
        (["--ratio", "1.5"], "--ratio (the share of parameters to prune) must be in (0, 1), got 1.5"),
        (["--ratio", "0", "--prune-engine", "depgraph"], "must be in (0, 1), got 0.0"),
        (["--prune-engine", "nope"], "--prune-engine must be one of auto, groups, depgraph, got 'nope'"),
    ],
)
def test_cli_bad_pruning_input_is_one_line_before_any_work(argv, part, tmp_path, capsys):
    assert main(["optimize", "--method", "prune", *argv, "--out", str(tmp_path / "p")]) == 2
    one_line_error(capsys.readouterr().err, part)
    assert not (tmp_path / "p").exists()


def test_depgraph_prunes_pixelformer_tiny_and_its_state_reloads():
    """PixelFormer-tiny (Swin-T encoder, window attention with relative-position tables, a bin-centre head joined
    to the per-pixel bin logits by a softmax and a cumulative sum): 30 % of its parameters go, its MACs drop by
    about as much (attention products and projections stay), both bin layers keep their 256 outputs."""
    net = load_model("pixelformer-tiny07", pretrained=False).net.eval()
    x = torch.zeros(1, 3, 224, 224)
    pruned, _ = prune_graph(net, x, 0.3)
    assert 1 - count_params(pruned) / count_params(net) == pytest.approx(0.3, abs=0.05)
    assert 1 - count_macs(pruned, x).macs / count_macs(net, x).macs == pytest.approx(0.3, abs=0.05)
    assert pruned.bcp.fc2.out_features == pruned.disp_head1.conv1.out_channels == 256
    qkv = "backbone.layers.0.blocks.0.attn.qkv"
    assert pruned.get_submodule(qkv).weight.shape == net.get_submodule(qkv).weight.shape
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = pruned(images)
    assert out.shape == (2, 1, 224, 224) and torch.isfinite(out).all()
    fresh = load_model("pixelformer-tiny07", pretrained=False).net.eval()
    fresh = resize_to_state(fresh, pruned.state_dict(), layer_groups(pruned))
    fresh.load_state_dict(pruned.state_dict())  # strict: every shape matches
    with torch.no_grad():
        assert torch.equal(fresh(images), out)
