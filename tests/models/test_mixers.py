"""Meta and Pyra token mixers: their attention-equivalent matrices against explicit products, exact reduction to
METER's attention, and Attention Rollout running on the replaced models."""

import copy

import pytest
import torch

from depthscope.explain import explain
from depthscope.models.meter import Attention
from depthscope.models.mixers import PoolMixer, SRAttention, pooling_matrix, reduction_matrix, replace_attention


def test_pooling_matrix_hand_values():
    p = pooling_matrix(3, 3)
    assert torch.allclose(p[4], torch.full((9,), 1 / 9))  # the centre averages all 9
    corner = torch.zeros(9)
    corner[[0, 1, 3, 4]] = 1 / 4  # (0,0): itself and 3 neighbours (padding excluded)
    assert torch.allclose(p[0], corner)
    assert torch.allclose(p.sum(1), torch.ones(9))


def test_reduction_matrix_partitions_tokens():
    r = reduction_matrix(3, 4, 2)  # cells (2 rows) x (2 cols); the last row of cells has 1 real row
    assert r.shape == (4, 12)
    assert torch.allclose((r > 0).sum(0).float(), torch.ones(12))  # every token in exactly one cell
    assert torch.allclose(r.sum(1), torch.ones(4))
    assert r[0, [0, 1, 4, 5]].tolist() == [0.25] * 4 and r[2, [8, 9]].tolist() == [0.5, 0.5]


@pytest.fixture()
def attn():
    torch.manual_seed(0)
    return Attention(16, 2, 8).eval()


def test_pool_mixer_is_its_matrix_times_values(attn):
    mixer = PoolMixer.from_attention(attn).eval()
    mixer.record = True
    x = torch.randn(2, 4, 6 * 5, 16)  # 4 groups of a 12x10 feature map: 6x5 tokens each
    out = mixer(x, (12, 10))
    v = x @ attn.to_qkv.weight[32:].T  # attention's value projection
    expected = attn.to_out(mixer.last_attention[:, :, 0] @ v)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(mixer.last_attention[0, 0, 0], pooling_matrix(6, 5))


def test_sr_attention_with_ratio_one_is_the_attention(attn):
    x = torch.randn(1, 4, 20, 16)
    sra = SRAttention.from_attention(attn, sr_ratio=1).eval()
    assert torch.allclose(sra(x, (8, 10)), attn(x, (8, 10)), atol=1e-5)


def test_sr_attention_equivalent_matrix_reproduces_its_output(attn):
    sra = SRAttention.from_attention(attn, sr_ratio=2).eval()
    sra.record = True
    x = torch.randn(2, 4, 4 * 6, 16)  # tokens 4x6: cells without padding
    seen = {}
    sra.to_out.register_forward_hook(lambda m, args, out: seen.update(inp=args[0]))
    sra(x, (8, 12))
    v = (x @ attn.to_qkv.weight[32:].T).reshape(2, 4, 24, 2, 8).transpose(2, 3)  # (B, G, h, N, d)
    mixed = (sra.last_attention @ v).transpose(2, 3).flatten(3)  # A R V with the full-resolution values
    assert torch.allclose(mixed, seen["inp"], atol=1e-5)
    assert torch.allclose(sra.last_attention.sum(-1), torch.ones(2, 4, 2, 24))


@pytest.mark.parametrize("kind", ["meta", "pyra"])
def test_rollout_runs_on_replaced_meter(meter_nyu, small_image, kind):
    model = copy.deepcopy(meter_nyu)
    blocks = replace_attention(model.net, kind)
    assert blocks == ["encoder.mvit.0", "encoder.mvit.1", "encoder.mvit.2"]
    assert len(model.attention_modules()) == 3
    m = explain(model, small_image, "attention_rollout", "box:0,0,60,80")["attention_rollout"].magnitude[0]
    assert torch.isfinite(m).all() and m.std() > 0
    assert m[:120, :160].sum() > m[120:, 160:].sum()  # the top-left target keeps its relevance near it
