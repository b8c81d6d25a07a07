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


def _assert_resumes_to_straight(tmp_path, **kw):
    """A run interrupted at step 7 and resumed (state of step 6) ends with a straight run's losses and weights."""
    net, loss_at = _problem()
    straight = train_phase("t", net, net.parameters(), loss_at, 10, tmp_path / "a.pt", **kw)
    net2, loss_at2 = _problem()

    def crashing(step):
        if step == 7:
            raise KeyboardInterrupt
        return loss_at2(step)

    with pytest.raises(KeyboardInterrupt):
        train_phase("t", net2, net2.parameters(), crashing, 10, tmp_path / "b.pt", **kw)
    net3, loss_at3 = _problem()  # a new process: fresh weights, state from disk (step 6)
    resumed = train_phase("t", net3, net3.parameters(), loss_at3, 10, tmp_path / "b.pt", **kw)
    assert resumed == pytest.approx(straight, rel=1e-6)
    for a, b in zip(net.parameters(), net3.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    _assert_resumes_to_straight(tmp_path, save_every=3, progress=False)


def test_cosine_schedule_rates_and_resume(tmp_path):
    import math

    from depthscope.errors import CheckpointError, InputError
    from depthscope.optimize.train import lr_factor

    # half a cosine from 1 to 0 over the phase: hand values
    assert [lr_factor("cosine", s, 4) for s in range(5)] == pytest.approx(
        [1.0, (1 + math.sqrt(0.5)) / 2, 0.5, (1 - math.sqrt(0.5)) / 2, 0.0], abs=1e-12
    )
    assert lr_factor("constant", 3, 4) == 1.0
    with pytest.raises(InputError, match="--lr-schedule must be one of constant, cosine, got 'step'"):
        lr_factor("step", 0, 4)

    # the rate the optimizer used: AdamW's first step moves each weight by lr * sign(grad) (bias-corrected moments,
    # no weight decay), so the step-0 change is the base rate (factor 1) and step 1's is lr * factor(1 of 4)
    p = nn.Parameter(torch.zeros(3))
    seen = []

    def loss_at(step):
        seen.append(p.detach().clone())
        return (p - torch.tensor([1.0, -1.0, 2.0])).pow(2).sum()

    train_phase("c", nn.Module(), [p], loss_at, 4, tmp_path / "c.pt", lr=0.1, progress=False, schedule="cosine")
    assert (seen[1] - seen[0]).abs().tolist() == pytest.approx([0.1, 0.1, 0.1], rel=1e-5)
    assert (seen[2] - seen[1]).abs().max().item() < 0.1 * (1 + math.sqrt(0.5)) / 2 * 1.01

    # resuming under a decaying rate: the same weights as a straight run; another number of steps is refused
    kw = {"save_every": 3, "progress": False, "schedule": "cosine"}
    _assert_resumes_to_straight(tmp_path, **kw)
    net4, loss_at4 = _problem()
    with pytest.raises(CheckpointError, match="training state of other settings"):
        train_phase("t", net4, net4.parameters(), loss_at4, 20, tmp_path / "b.pt", **kw)


def test_weight_average_is_the_mean_of_the_weights_after_each_averaged_step(tmp_path):
    """``average_from=0.6`` of 10 steps: the phase ends with the mean of the weights after steps 6-9 (0-based),
    which a plain run's trajectory gives by hand (averaging does not change the trajectory); resumed, the same."""
    from depthscope.errors import CheckpointError, InputError
    from depthscope.optimize.train import average_start

    net, loss_at = _problem()
    after = []  # the weights after each step: seen at the next step's start, and at the end

    def recording(step):
        if step:
            after.append([p.detach().clone() for p in net.parameters()])
        return loss_at(step)

    train_phase("t", net, net.parameters(), recording, 10, tmp_path / "plain.pt", progress=False)
    after.append([p.detach().clone() for p in net.parameters()])
    net2, loss_at2 = _problem()
    train_phase("t", net2, net2.parameters(), loss_at2, 10, tmp_path / "avg.pt", progress=False, average_from=0.6)
    for i, p in enumerate(net2.parameters()):
        assert torch.allclose(p, sum(w[i] for w in after[6:]) / 4, atol=1e-6)
        assert not torch.allclose(p, after[-1][i], atol=1e-4)  # not the last step's weights
    kw = {"save_every": 3, "progress": False, "average_from": 0.5}
    _assert_resumes_to_straight(tmp_path, **kw)  # the state read back holds the first of the 5 averaged steps
    net3, loss_at3 = _problem()
    with pytest.raises(CheckpointError, match="training state of other settings"):
        train_phase("t", net3, net3.parameters(), loss_at3, 12, tmp_path / "b.pt", **kw)
    assert [average_start(f, 10) for f in (0.0, 0.5, 0.99, 1.0)] == [0, 5, 9, 10]
    with pytest.raises(InputError, match=r"--e2e-average-from must be in \[0, 1\]"):
        average_start(1.5, 10)


def test_select_keeps_whichever_of_mean_and_last_weights_scores_lower(tmp_path):
    """With ``select``, an averaged phase ends with the mean or the last step's weights, whichever ``select``
    scores lower, and ``report`` says which; the scores are those of the weights themselves."""
    net, loss_at = _problem()
    train_phase("t", net, net.parameters(), loss_at, 10, tmp_path / "last.pt", progress=False)
    last = [p.detach().clone() for p in net.parameters()]
    net_mean, loss_mean = _problem()
    train_phase("t", net_mean, net_mean.parameters(), loss_mean, 10, tmp_path / "mean.pt", progress=False,
                average_from=0.5)  # fmt: skip
    mean = [p.detach().clone() for p in net_mean.parameters()]

    def distance_to(target):
        return lambda: sum((p - t).pow(2).sum() for p, t in zip(net2.parameters(), target, strict=True)).item()

    for target, kept in ((last, "last step"), (mean, "mean")):
        net2, loss_at2 = _problem()
        report = {}
        train_phase("t", net2, net2.parameters(), loss_at2, 10, tmp_path / f"{kept}-sel.pt", progress=False,
                    average_from=0.5, select=distance_to(target), report=report)  # fmt: skip
        assert report["kept"] == kept and min(report["mean_score"], report["last_score"]) == 0.0
        for p, t in zip(net2.parameters(), target, strict=True):
            assert torch.equal(p, t)
