"""The robustness family against Quantus 0.6 on the same inputs: a scalar-wrapped toy model, our saliency as
Quantus' explain function, and Quantus' perturbation replaced by the very inputs our metric drew."""

import warnings

import numpy as np
import pytest
import torch

from depthscope.assess import AssessConfig
from depthscope.assess.robustness import (
    LocalLipschitz,
    RelativeStability,
    Sensitivity,
    SensitivityConfig,
    lipschitz_ratios,
    relative_input_stability,
    sensitivities,
)
from depthscope.assess.run import image_context
from depthscope.errors import InputError
from depthscope.explain import explain
from tests.assess.toys import box_image, box_model

quantus = pytest.importorskip("quantus")


class Scalar(torch.nn.Module):
    """The toy's mean depth as a one-output 'classifier', as Quantus expects."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).mean((2, 3))


def _quantus_and_ours(metric_cls, quantus_cls, config=None):
    model, x = box_model(), box_image()
    ctx = image_context(
        model, x, AssessConfig(methods=("saliency",), metrics=(metric_cls.name,), perturb_region="full")
    )
    a = ctx.remap("saliency")
    metric = metric_cls(config)
    draws = metric.prepare(ctx)
    inputs = iter([xk.numpy() for xk in draws.xs])

    def perturb(arr, indices, **kwargs):
        return next(inputs).reshape(arr.shape)

    def explain_func(model, inputs, targets, **kwargs):
        return explain(ctx.model, torch.from_numpy(inputs), "saliency")["saliency"].raw.numpy()

    q = quantus_cls(nr_samples=len(draws.xs), perturb_func=perturb, normalise=metric.config.normalise,
                    disable_warnings=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = q(model=Scalar(model).eval(), x_batch=x.numpy(), y_batch=np.array([0]), a_batch=a.raw.numpy(),
                   explain_func=explain_func, device="cpu")[0]  # fmt: skip
    return float(theirs), metric.score(draws, a)


@pytest.mark.parametrize(
    ("metric_cls", "quantus_name", "column", "rel"),
    [
        (Sensitivity, "MaxSensitivity", "max_sensitivity", 1e-5),
        (Sensitivity, "AvgSensitivity", "avg_sensitivity", 1e-5),
        (LocalLipschitz, "LocalLipschitzEstimate", "local_lipschitz", 1e-5),
        (RelativeStability, "RelativeInputStability", "relative_input_stability", 1e-5),
        # ROS divides by |y - y'|, a difference of two float32 depths ~1e-3 m apart: ~1e-4 relative rounding
        (RelativeStability, "RelativeOutputStability", "relative_output_stability", 2e-3),
    ],
)
def test_equal_to_quantus_on_the_same_inputs(metric_cls, quantus_name, column, rel):
    theirs, ours = _quantus_and_ours(metric_cls, getattr(quantus, quantus_name))
    assert ours[column] == pytest.approx(theirs, rel=rel)
    assert ours[column] > 0  # the toy's gradient moves with the input


def test_normalised_sensitivity_equals_quantus_too():
    theirs, ours = _quantus_and_ours(Sensitivity, quantus.MaxSensitivity, SensitivityConfig(normalise=True))
    assert ours["max_sensitivity"] == pytest.approx(theirs, rel=1e-5)


def test_formulas_by_hand():
    a = torch.tensor([[[3.0, 4.0]]])  # ||a|| = 5
    p = torch.tensor([[[[3.0, 4.0]]], [[[0.0, 0.0]]], [[[6.0, 8.0]]]])
    assert sensitivities(a, p).tolist() == pytest.approx([0.0, 1.0, 1.0])
    x = torch.zeros(1, 1, 2)
    xs = torch.tensor([[[[0.0, 2.0]]], [[[1.0, 0.0]]], [[[0.0, 0.5]]]])
    assert lipschitz_ratios(a, p, x, xs).tolist() == pytest.approx([0.0, 5.0, 10.0])
    # RIS: ||(a - a')/a|| = ||(1, 1)|| = sqrt 2 for a' = 0; input x = 1 -> 2: ||(x - x')/x|| = ||(1, 1)|| = sqrt 2
    ones = torch.ones(1, 1, 2)
    assert relative_input_stability(a, p[1:2], ones, 2 * ones[None]).item() == pytest.approx(1.0)


def test_a_constant_map_is_perfectly_stable_and_noise_stays_in_the_region():
    model, x = box_model(), box_image()
    ctx = image_context(
        model, x, AssessConfig(methods=("random",), metrics=("sensitivity",), perturb_region="4,4,20,12")
    )
    draws = Sensitivity().prepare(ctx)
    moved = (torch.cat(draws.xs) != x).any(0).any(0)
    assert moved[4:12, 4:20].any() and not moved[:4].any() and not moved[:, :4].any() and not moved[12:].any()
    # the random map is seeded by the image, not the input: the same map for every perturbed input
    row = Sensitivity().score(draws, ctx.remap("random"))
    assert row["max_sensitivity"] == 0.0


def test_bad_options_are_one_line():
    with pytest.raises(InputError, match="sensitivity_n_samples must be >= 1"):
        Sensitivity.configure({"n_samples": 0})
    with pytest.raises(InputError, match="local_lipschitz_noise must be in"):
        LocalLipschitz.configure({"noise": 2})
