"""Rollout through windowed attention against hand-computed relevance, and PixelFormer end to end."""

import pytest
import torch

from depthscope.explain import explain
from depthscope.explain.rollout import recording
from depthscope.explain.rollout_windows import spread_relevance, stage_relevance
from depthscope.models import Preprocessing, load_model
from depthscope.models.swin import SwinStage


class StageNet(torch.nn.Module):
    """One Swin stage on a 4x4 token grid, window 2: a plain block then a shifted one (shift 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage = SwinStage(dim=4, depth=2, heads=1, ws=2, downsample=False)
        for blk in self.stage.blocks:  # zero logits: attention is uniform over each (masked) window
            torch.nn.init.zeros_(blk.attn.qkv.weight)
            torch.nn.init.zeros_(blk.attn.qkv.bias)
            torch.nn.init.zeros_(blk.attn.relative_position_bias_table)

    def attention_modules(self):
        return [b.attn for b in self.stage.blocks]

    def forward(self, x):
        return self.stage(x, 4, 4)[0]


def one_hot(i, j):
    r = torch.zeros(1, 4, 4)
    r[0, i, j] = 1.0
    return r


@pytest.fixture(scope="module")
def stage_net():
    return StageNet()


def test_shifted_window_relevance_hand_computed(stage_net):
    """Target token (1,1). Shifted block (rolled by -1): its window holds tokens (1,1),(1,2),(2,1),(2,2), all in
    one mask region, so A is uniform: A_hat row = 0.5 e + 0.125 each -> .625 on (1,1), .125 on the three others.
    Plain block: each of those four lies in a different 2x2 window and spreads the same way inside it."""
    x = torch.randn(1, 16, 4)
    with recording(stage_net, x):
        r = stage_relevance(one_hot(1, 1), stage_net.stage, "mean", 0.0)
    a, b, c, d, e = 0.078125, 0.390625, 0.015625, 0.078125, 0.015625
    expected = torch.tensor([[a, a, c, c], [a, b, d, e], [c, d, d, e], [c, c, c, c]])
    torch.testing.assert_close(r[0], expected)
    assert r.sum().item() == pytest.approx(1.0)


def test_wrapped_corner_is_masked(stage_net):
    """Token (0,0) rolls to the bottom-right window beside tokens wrapped from the far edges; the mask keeps them
    apart, so the shifted block leaves its relevance in place and only the plain block spreads it."""
    with recording(stage_net, torch.randn(1, 16, 4)):
        r = stage_relevance(one_hot(0, 0), stage_net.stage, "mean", 0.0)
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 0.125
    expected[0, 0] = 0.625
    torch.testing.assert_close(r[0], expected)


def test_unmerge_and_unembed_split_evenly():
    r = torch.tensor([[[1.0, 2.0]]])  # one stage-s+1 row of 2 tokens
    torch.testing.assert_close(spread_relevance(r, (1, 3), 2), torch.tensor([[[0.25, 0.25, 0.5]]]))  # odd grid
    px = spread_relevance(torch.tensor([[[16.0]]]), (3, 4), 4)
    torch.testing.assert_close(px, torch.ones(1, 3, 4))


@pytest.fixture(scope="module")
def tiny_pixelformer():
    torch.manual_seed(0)
    model = load_model("pixelformer-tiny07", pretrained=False)
    return model.with_info(preprocessing=Preprocessing(input_size=(224, 224)))


def test_pixelformer_rollout_conserves_relevance(tiny_pixelformer):
    """At 224x224 every grid (56, 28, 14, 7) is a whole number of 7x7 windows: no padding, so each target's
    relevance reaches the pixels in full; a box target's relevance stays mostly in its own quadrant."""
    x = torch.rand(1, 3, 224, 224)
    a = explain(tiny_pixelformer, x, "attention_rollout", target="box:0,0,112,112")["attention_rollout"]
    m = a.signed[0, 0] if a.signed.dim() == 4 else a.signed[0]
    assert m.min() >= 0
    assert m.sum().item() == pytest.approx(1.0, rel=1e-4)
    assert m[:112, :112].sum() > 0.5
    assert a.info["blocks"] == 2 + 2 + 6 + 2 + 4
