"""Structured pruning: removed channels are really gone (params and MACs drop by the ratio), and the pruned
network computes exactly what the original computes with those channels' consumer weights zeroed."""

import copy
import warnings

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
from depthscope.models.heads import head_counts, set_head_counts
from depthscope.models.meter import Attention
from depthscope.optimize.distill import kept_width_blocks
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


def test_depgraph_prunes_meters_heads_and_reloads_from_its_checkpoint(meter_nyu, tmp_path):
    """30 % of the parameters go; each attention keeps round(0.7 * 4) = 3 of its 4 heads of width 8 (its q, k,
    v rows and output columns shrink, its input and output widths do not), and the checkpoint rebuilds that from
    the recipe (the shapes do not say how many heads ``to_qkv``'s 72 rows hold)."""
    out = tmp_path / "dg"
    argv = ["optimize", "--method", "prune", "--prune-engine", "depgraph", "--ratio", "0.3", "--e2e-steps", "1",
            "--batch", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    pruned = load_model(str(out / "model.safetensors"))
    assert pruned.name == "meter-xxs-nyu+prune0.3-depgraph"  # not the name of METER's groups at the same ratio
    assert 1 - count_params(pruned.net) / count_params(meter_nyu.net) == pytest.approx(0.3, abs=0.05)
    attention = [n for n, m in meter_nyu.net.named_modules() if isinstance(m, Attention)]
    assert len(attention) == 3
    for name in attention:
        original, ours = meter_nyu.net.get_submodule(name), pruned.net.get_submodule(name)
        assert (ours.heads, ours.to_qkv.out_features, ours.to_out[0].in_features) == (3, 72, 24)
        assert ours.to_qkv.in_features == original.to_qkv.in_features
        assert ours.to_out[0].out_features == original.to_out[0].out_features
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
        (["--prune-engine", "depgraph", "--prune-scope", "most"], "--prune-scope must be one of all, internal, got"),
        (["--lr-schedule", "step"], "--lr-schedule must be one of constant, cosine, got 'step'"),
        (["--feature-weight", "-1"], "--feature-weight must be a finite number >= 0, got -1.0"),
        (["--feature-weight", "nan"], "--feature-weight must be a finite number >= 0, got nan"),
        (["--e2e-average-from", "1.5"], "--e2e-average-from must be in [0, 1] (a fraction of the phase), got 1.5"),
        (["--weights", "nowhere.safetensors"], "nowhere.safetensors"),
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
    # whole heads go from every window attention (Swin stages of 3/6/12/24 heads, SAM's 4/8/16/32), their
    # bias-table columns with them; queries, keys and values keep their width of 32 a head
    heads = head_counts(pruned)
    assert len(heads) == 16 and heads["backbone.layers.0.blocks.0.attn"] == 2 and heads["sam4.sam_block.attn"] < 32
    for name, n in heads.items():
        attn = pruned.get_submodule(name)
        assert attn.relative_position_bias_table.shape[1] == n and attn.proj.in_features == 32 * n, name
    images = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = pruned(images)
    assert out.shape == (2, 1, 224, 224) and torch.isfinite(out).all()
    fresh = load_model("pixelformer-tiny07", pretrained=False).net.eval()
    fresh = set_head_counts(fresh, heads)  # as the loader does: heads first, then the shapes
    fresh = resize_to_state(fresh, pruned.state_dict(), layer_groups(pruned))
    fresh.load_state_dict(pruned.state_dict())  # strict: every shape matches
    with torch.no_grad():
        assert torch.equal(fresh(images), out)


def test_internal_scope_prunes_only_widths_hidden_in_blocks():
    """``scope="internal"`` on the foreign network: the residual stream (the stem's 128 channels, every block's
    input and output) stays, the hidden widths of the residual bodies, of the MLP and of the head (its transposed
    convolution's 32 outputs) go, and those four blocks are what block-wise distillation trains."""
    net, x = Foreign().eval(), torch.zeros(1, 3, 64, 96)
    pruned, _ = prune_graph(net, x, 0.3, scope="internal")
    assert 1 - count_params(pruned) / count_params(net) == pytest.approx(0.3, abs=0.05)
    assert pruned.stem[0].out_channels == 128 and pruned.head[0].in_channels == 128
    assert pruned.mlp[2].out_channels == 128 and pruned.mlp[0].out_channels < 4 * 128
    for block in pruned.blocks:
        assert block.body[0].in_channels == block.body[6].out_channels == 128 > block.body[0].out_channels
    assert pruned.head[0].out_channels < 32 and pruned.head[2].out_channels == 1
    assert kept_width_blocks(net, pruned, x) == ["blocks.0.body", "blocks.1.body", "head", "mlp"]
    with pytest.raises(InputError, match="--prune-scope must be one of all, internal, got 'most'"):
        prune_graph(net, x, 0.3, scope="most")


def test_internal_scope_finds_meters_hand_written_groups(meter_nyu):
    """On METER the graph-derived blocks are METER's own channel groups (models/channels.py, written by hand from
    its architecture): each lies inside one, and every hand-written group whose layers lost channels holds one."""
    x = torch.zeros(1, 3, 192, 256)
    pruned, _ = prune_graph(meter_nyu.net, x, 0.3, scope="internal")
    assert 1 - count_params(pruned) / count_params(meter_nyu.net) == pytest.approx(0.3, abs=0.05)
    blocks = kept_width_blocks(meter_nyu.net, pruned, x)
    # the three attentions lost a head each: blocks of their own (called with their token grid), outside METER's
    # hand-written groups, which hold no attention
    attention = [b for b in blocks if isinstance(pruned.get_submodule(b), Attention)]
    assert len(attention) == 3 and all(pruned.get_submodule(b).heads == 3 for b in attention)
    blocks = [b for b in blocks if b not in attention]
    groups = [g.name for g in meter_groups(meter_nyu.net)]
    inside = {b: [g for g in groups if b == g or b.startswith(f"{g}.")] for b in blocks}
    assert all(len(gs) == 1 for gs in inside.values()), inside
    shapes = {n: p.shape for n, p in meter_nyu.net.named_parameters()}
    cut = {g for g in groups for n, p in pruned.named_parameters() if n.startswith(f"{g}.") and p.shape != shapes[n]}
    assert {gs[0] for gs in inside.values()} == cut and len(cut) >= 15
    # kept widths are rounded to the nearest multiple of 8, as the hand-written groups' are: 30 % off a width of 32
    # keeps 22.4 -> 24 channels (torch-pruning's own rounding floors to 16, halving these early layers)
    assert pruned.encoder.mv2[0].conv[0].out_channels == 24
    assert pruned.decoder.ups_block_1.end_up_layer[0].depthwise.out_channels == 24
    # and ranked as the hand-written groups rank them (each member's L2 norms over their mean, summed; depthwise
    # convolutions included): wherever both engines keep a width, they keep the same channels, to the bit
    by_hand = dict(prune_channels(meter_nyu.net, 0.3)[0].named_parameters())
    ours = dict(pruned.named_parameters())
    same = [n for n, p in ours.items() if p.shape == by_hand[n].shape]
    assert len(same) >= 120 and all(torch.equal(ours[n], by_hand[n]) for n in same)


def test_depgraph_prunes_a_hugging_face_depth_model_and_it_reloads(tmp_path):
    """A whole Hugging Face model (Depth Anything: DINOv2 backbone, DPT neck) through the CLI: 30 % of the
    parameters go, each of its 4 attentions keeps round(0.7 * 4) = 3 heads of width 16 (q/k/v 48 rows, output
    projection 48 columns), torch-pruning says nothing of the class token, position embeddings and layer scales
    (declared with the dimension it would choose), and ``--model FILE`` rebuilds the model from its ``hf:`` base."""
    pytest.importorskip("transformers")
    from hf_models import save_tiny_depth_anything

    src = save_tiny_depth_anything(tmp_path / "da", width=64, heads=4)
    out = tmp_path / "dg"
    argv = ["optimize", "--model", f"hf:{src}", "--method", "prune", "--ratio", "0.3", "--steps", "1",
            "--e2e-steps", "1", "--batch", "1", "--out", str(out)]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(argv) == 0
    assert not [w for w in caught if "nwrapped parameters" in str(w.message)]
    original = load_model(f"hf:{src}")
    pruned = load_model(str(out / "model.safetensors"))
    x = torch.zeros(1, 3, *original.preprocessing.input_size)
    assert 1 - count_params(pruned.net) / count_params(original.net) == pytest.approx(0.3, abs=0.05)
    assert 1 - count_macs(pruned.net, x).macs / count_macs(original.net, x).macs == pytest.approx(0.3, abs=0.05)
    layers = pruned.net.model.backbone.encoder.layer
    assert list(head_counts(pruned.net).values()) == [3, 3, 3, 3]  # restored from the recipe
    for layer in layers:
        att = layer.attention
        assert (att.q_proj.out_features, att.k_proj.out_features, att.v_proj.out_features) == (48, 48, 48)
        assert att.o_proj.in_features == 48
    from safetensors.torch import load_file

    saved = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in pruned.net.state_dict().items())
    with torch.no_grad():
        depth = pruned(torch.rand(1, 3, 480, 640, generator=torch.Generator().manual_seed(0)))
    assert depth.shape == (1, 1, 480, 640) and torch.isfinite(depth).all()
