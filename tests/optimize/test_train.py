"""The resumable training loop: an interrupted run resumed from its checkpoint ends where a straight run ends."""

import pytest
import torch
from torch import nn

from depthscope.optimize.train import train_phase


def _problem():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    w = torch.randn(4, 1)

    def loss_at(step):
        g = torch.Generator().manual_seed(step)
        x = torch.randn(16, 4, generator=g)
        return (net(x) - x @ w).pow(2).mean()

    return net, loss_at


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    net, loss_at = _problem()
    straight = train_phase("t", net, net.parameters(), loss_at, 10, tmp_path / "a.pt", save_every=3, progress=False)

    net2, loss_at2 = _problem()

    def crashing(step):
        if step == 7:
            raise KeyboardInterrupt
        return loss_at2(step)

    with pytest.raises(KeyboardInterrupt):
        train_phase("t", net2, net2.parameters(), crashing, 10, tmp_path / "b.pt", save_every=3, progress=False)
    net3, loss_at3 = _problem()  # a new process: fresh weights, state from disk (step 6)
    resumed = train_phase("t", net3, net3.parameters(), loss_at3, 10, tmp_path / "b.pt", save_every=3, progress=False)
    assert resumed == pytest.approx(straight, rel=1e-6)
    for a, b in zip(net.parameters(), net3.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)
