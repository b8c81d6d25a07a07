import pytest
import torch

from depthscope.explain import explain
from depthscope.explain.rollout import rollout


def test_rollout_hand_computed():
    a1 = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
    a2 = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
    # A_hat = 0.5 A + 0.5 I: [[.9,.1],[.2,.8]] and [[.75,.25],[.05,.95]]; R = A2_hat @ A1_hat
    expected = torch.tensor([[0.725, 0.275], [0.235, 0.765]])
    torch.testing.assert_close(rollout([a1[None], a2[None]]), expected)
    # head fusion over two heads: mean of (a1, a2) for one layer -> [[.65,.35],[.25,.75]] -> hat [[.825,.175],[.125,.875]]
    two_heads = torch.stack([a1, a2])
    torch.testing.assert_close(rollout([two_heads], "mean"), torch.tensor([[0.825, 0.175], [0.125, 0.875]]))
    # max fusion: [[.8,.5],[.4,.9]] -> +I/2 -> [[.9,.25],[.2,.95]] -> rows normalised
    mx = torch.tensor([[0.9, 0.25], [0.2, 0.95]])
    torch.testing.assert_close(rollout([two_heads], "max"), mx / mx.sum(1, keepdim=True))


def test_discard_ratio_zeroes_weakest_offdiagonal():
    a = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]])
    # 6 off-diagonal entries, ratio 0.5 -> the 3 weakest (0.1, 0.2 at (1,0), 0.25 at (2,1)) are zeroed
    kept = torch.tensor([[0.6, 0.3, 0.0], [0.0, 0.2, 0.6], [0.5, 0.0, 0.25]])
    hat = 0.5 * kept + 0.5 * torch.eye(3)
    torch.testing.assert_close(rollout([a[None]], discard_ratio=0.5), hat / hat.sum(1, keepdim=True))


def test_rollout_non_constant_on_every_nyu_image(meter_nyu, nyu):
    for s in nyu:
        m = explain(meter_nyu, s.image, "attention_rollout")["attention_rollout"].magnitude
        assert m.shape == (1, 480, 640)
        assert m.std() > 1e-3 * m.mean(), s.name


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
def test_rollout_box_target_concentrates_near_box(meter_nyu, small_image, fusion):
    m = explain(
        meter_nyu,
        small_image,
        "attention_rollout",
        "box:0,0,60,80",
        {"attention_rollout": {"head_fusion": fusion, "discard_ratio": 0.2}},
    )["attention_rollout"].magnitude[0]
    assert m[:60, :80].mean() > m[180:, 240:].mean()
