"""Randomisation metrics and the target share on toy models: a map that ignores the model (the random map) fails
MPRT and the random-target test; saliency of a local convolutional model passes them and puts each cell's
relevance in that cell. eMPRT's entropy equals Quantus'."""

import math

import numpy as np
import pytest
import torch

from depthscope.assess import AssessConfig
from depthscope.assess.randomisation import (
    EfficientMprt,
    Mprt,
    RandomTarget,
    SmoothMprt,
    TargetShare,
    discrete_entropy,
    randomised_cascade,
)
from depthscope.assess.run import image_context
from depthscope.errors import InputError
from tests.assess.toys import box_image, local_model

quantus = pytest.importorskip("quantus")


def _ctx():
    return image_context(local_model(), box_image(), AssessConfig(methods=("saliency",), metrics=("mprt",),
                                                                  perturb_region="full"))  # fmt: skip


def test_discrete_entropy_equals_quantus():
    from quantus.functions.complexity_func import discrete_entropy as theirs

    a = torch.rand(32, 48, generator=torch.Generator().manual_seed(0)) ** 3
    assert discrete_entropy(a, 100) == pytest.approx(float(theirs(a.numpy(), x=None, n_bins=100)), abs=1e-12)
    assert discrete_entropy(torch.ones(10, 10)) == 0.0


def test_the_cascade_randomises_from_the_output_and_keeps_the_model():
    ctx = _ctx()
    before = [p.clone() for p in ctx.model.parameters()]
    models = randomised_cascade(ctx.model, ctx.x, steps=2, seed=0)

    def changed(m, name):
        return not torch.equal(dict(m.named_parameters())[name], dict(ctx.model.named_parameters())[name])

    assert changed(models[0], "net.body.2.weight") and not changed(models[0], "net.body.0.weight")  # the top first
    assert changed(models[1], "net.body.2.weight") and changed(models[1], "net.body.0.weight")
    assert all(torch.equal(a, b) for a, b in zip(before, ctx.model.parameters(), strict=True))
    g = torch.get_rng_state()
    randomised_cascade(ctx.model, ctx.x, steps=1, seed=0)
    assert torch.equal(g, torch.get_rng_state())  # the global random state is left alone


@pytest.mark.parametrize("metric", [Mprt, SmoothMprt])
def test_mprt_fails_the_random_map_and_passes_saliency(metric):
    ctx = _ctx()
    m = metric(metric.configure({"steps": 2} if metric is Mprt else {"n_noise": 2}))
    prepared = m.prepare(ctx)
    sal = m.score(prepared, ctx.remap("saliency"))[metric.name]
    rnd = m.score(prepared, ctx.remap("random"))[metric.name]
    assert rnd == pytest.approx(1.0)  # the random map is the same whatever the weights: no dependence
    assert sal < 0.8


def test_efficient_mprt_is_zero_for_the_random_map_and_by_hand():
    ctx = _ctx()
    m = EfficientMprt()
    prepared = m.prepare(ctx)
    assert m.score(prepared, ctx.remap("random"))["efficient_mprt"] == 0.0
    a = ctx.remap("saliency")
    after = ctx.remap("saliency", model=prepared.models[-1]).magnitude[0]
    expected = (discrete_entropy(after) - discrete_entropy(a.magnitude[0])) / discrete_entropy(a.magnitude[0])
    assert m.score(prepared, a)["efficient_mprt"] == pytest.approx(expected)


def test_random_target_and_target_share_follow_the_target():
    ctx = _ctx()
    rt = RandomTarget()
    prepared = rt.prepare(ctx)
    assert rt.score(prepared, ctx.remap("random"))["random_target"] == pytest.approx(1.0)  # the target is ignored
    assert rt.score(prepared, ctx.remap("saliency"))["random_target"] < 0.5
    share = TargetShare()
    sal = share.score(ctx, ctx.remap("saliency"))
    rnd = share.score(ctx, ctx.remap("random"))
    # a pixel's depth reads a 5x5 neighbourhood: a cell's relevance lies in the cell but for a 2-px seam
    assert sal["target_share"] > 0.85 and sal["target_share_ratio"] > 3.4
    assert rnd["target_share"] == pytest.approx(0.25, abs=0.02)  # uniform noise: the cells' area share


def test_bad_options_are_one_line():
    with pytest.raises(InputError, match="random_target_grid must be >= 2"):
        RandomTarget.configure({"grid": 1})
    with pytest.raises(InputError, match="mprt needs steps >= 1"):
        Mprt.configure({"steps": 0})
    assert math.isfinite(discrete_entropy(torch.tensor(np.linspace(0, 1, 50))))
