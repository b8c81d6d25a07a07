"""Attention heads: a module with heads removed computes exactly what the original computes with those heads'
columns of the output projection zeroed (each head's output enters the output projection through its own
``head_dim`` columns and nowhere else), for every registered layout."""

import copy

import pytest
import torch
from torch import nn

from depthscope.models.heads import HEAD_LAYOUTS, head_counts, head_layouts, set_head_counts
from depthscope.models.meter import Attention
from depthscope.models.mixers import SRAttention
from depthscope.models.pixelformer import WindowCrossAttention
from depthscope.models.swin import WindowSelfAttention

GEN = torch.Generator().manual_seed(0)
KEEP = torch.tensor([0, 2])  # of 4 heads


def _randomised(m: nn.Module) -> nn.Module:
    """Non-zero weights and biases everywhere (bias tables start near zero; a zero table hides a wrong slice)."""
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=GEN) * 0.3)
    return m.eval()


def _hf_attention() -> nn.Module:
    from transformers import Dinov2Config
    from transformers.models.dinov2.modeling_dinov2 import Dinov2Attention

    cfg = Dinov2Config(hidden_size=32, num_attention_heads=4)
    cfg._attn_implementation = "eager"
    return Dinov2Attention(cfg)


class TimmAttention(nn.Module):
    """timm 1.0's ``Attention`` interface, written here (timm needs torchvision, which this CPU build has not):
    a fused ``qkv`` split by ``num_heads`` and ``head_dim``, the heads' outputs reshaped by ``attn_dim``."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, attn_dim_attribute: bool = True) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        if attn_dim_attribute:  # timm < 1.0 has none (and reshapes by the input width)
            self.attn_dim = num_heads * head_dim
        self.qkv, self.norm = nn.Linear(dim, 3 * num_heads * head_dim), nn.Identity()
        self.proj = nn.Linear(num_heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(self.norm(out.transpose(1, 2).reshape(b, n, self.attn_dim)))


CASES = {  # layout -> (module with 4 heads of width 8, its call on random inputs, its output projection)
    "meter": (lambda: Attention(24, 4, 8), lambda m, x: m(x[..., :24].reshape(2, 1, 16, 24)), lambda m: m.to_out[0]),
    "pyra": (
        lambda: SRAttention(24, 4, 8),
        lambda m, x: m(x[..., :24].reshape(2, 1, 16, 24), (4, 4)),
        lambda m: m.to_out[0],
    ),
    "swin": (lambda: WindowSelfAttention(32, 4, 4), lambda m, x: m(x[..., :32].reshape(2, 16, 32)), lambda m: m.proj),
    "pixelformer-sam": (
        lambda: WindowCrossAttention(32, 4, 4),
        lambda m, x: m(x[..., :32].reshape(2, 16, 32), x[..., 32:].reshape(2, 16, 32).flip(1)),
        lambda m: m.proj,
    ),
    "q_k_v_o_proj": (_hf_attention, lambda m, x: m(x[..., :32].reshape(2, 16, 32))[0], lambda m: m.o_proj),
    "timm": (lambda: TimmAttention(24, 4, 8), lambda m, x: m(x[..., :24].reshape(2, 16, 24)), lambda m: m.proj),
}


def test_every_registered_layout_is_tested():
    assert set(CASES) == set(HEAD_LAYOUTS.names())


@pytest.mark.parametrize("kind", CASES)
def test_removing_heads_equals_zeroing_their_output_columns(kind):
    make, call, out_proj = CASES[kind]
    net = _randomised(make())
    x = torch.randn(2, 16, 64, generator=GEN)
    zeroed = copy.deepcopy(net)
    with torch.no_grad():
        for h in (1, 3):  # the heads KEEP drops, each 8 columns wide
            out_proj(zeroed).weight[:, 8 * h : 8 * (h + 1)] = 0
    layout = head_layouts(nn.Sequential(net))["0"]
    assert layout.heads == 4 and layout.head_dim == 8
    layout.keep(KEEP)
    assert head_counts(nn.Sequential(net)) == {"0": 2} and out_proj(net).in_features == 16
    with torch.no_grad():
        got, want = call(net, x), call(zeroed, x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bias_table_keeps_the_kept_heads_columns():
    net = _randomised(WindowSelfAttention(32, 4, 4))
    table = net.relative_position_bias_table.detach().clone()
    head_layouts(nn.Sequential(net))["0"].keep(KEEP)
    assert torch.equal(net.relative_position_bias_table, table[:, KEEP])
    assert isinstance(net.relative_position_bias_table, nn.Parameter)


def test_importance_ranks_the_head_with_the_largest_weights_first():
    net = _randomised(Attention(24, 4, 8))
    with torch.no_grad():
        net.to_qkv.weight[16:24] *= 10  # head 2's query rows (rows 0-31 are the queries, 8 a head)
        net.to_out[0].weight[:, 8:16] *= 10  # head 1's output columns
    score = head_layouts(nn.Sequential(net))["0"].importance()
    assert set(torch.topk(score, 2).indices.tolist()) == {1, 2}
    # by hand for head 0: its 24 rows' (q, k, v) and 8 columns' L2 norms, each over that member's mean norm
    rows = net.to_qkv.weight.norm(dim=1)
    cols = net.to_out[0].weight.norm(dim=0)
    own_rows = torch.cat([rows[0:8], rows[32:40], rows[64:72]])
    want = own_rows.sum() / rows.mean() + cols[:8].sum() / cols.mean()
    assert score[0].item() == pytest.approx(want.item(), rel=1e-5)


def test_set_head_counts_restores_what_the_shapes_do_not_say():
    net = nn.Sequential(Attention(24, 4, 8))
    head_layouts(net)["0"].keep(torch.tensor([1, 2, 3]))
    with pytest.raises(KeyError):
        set_head_counts(nn.Sequential(Attention(24, 4, 8)), {"1": 3})
    with pytest.raises(ValueError, match="5 heads, the architecture has 4"):
        set_head_counts(nn.Sequential(Attention(24, 4, 8)), {"0": 5})
    fresh = set_head_counts(nn.Sequential(Attention(24, 4, 8)), head_counts(net))
    assert fresh[0].heads == 3


def test_timm_attention_gets_its_attn_dim_back_and_older_timm_is_left_alone():
    net = nn.Sequential(_randomised(TimmAttention(24, 4, 8)))
    head_layouts(net)["0"].keep(KEEP)
    assert (net[0].num_heads, net[0].attn_dim) == (2, 16)
    fresh = set_head_counts(nn.Sequential(TimmAttention(24, 4, 8)), head_counts(net))  # as a checkpoint loads
    assert (fresh[0].num_heads, fresh[0].attn_dim) == (2, 16)
    assert head_layouts(nn.Sequential(TimmAttention(24, 4, 8, attn_dim_attribute=False))) == {}
