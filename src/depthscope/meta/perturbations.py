"""The perturbations a metric is meta-evaluated under, each a registered :class:`MetaTest`: minor ones (the
input or the weights moved a little, the depth by less than a tolerance) under which a reliable metric's scores
stay put, and disruptive ones (the decoder randomised, the maps shuffled or inverted) under which they must fall."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from depthscope.assess.randomisation import randomised_cascade
from depthscope.explain.attribution import Attribution
from depthscope.models import DepthModel
from depthscope.registry import Registry
from depthscope.seeding import generator, stream_seed

MapTransform = Callable[[Attribution, int], Attribution]


@dataclass(frozen=True)
class Perturbed:
    """What one repetition of a test changes: the model (scored and explained), the image, a transform of every
    map (None: as is) and the model the maps explain instead (None: ``model``)."""

    model: DepthModel
    x: torch.Tensor
    transform: MapTransform | None = None
    map_model: DepthModel | None = None


@dataclass(frozen=True)
class MetaTest:
    """A registered perturbation of the meta-evaluation.

    Attributes:
        name: the registry name (``--tests NAME``).
        kind: ``minor`` (noise resilience: scores should stay) or ``disruptive`` (adversarial reactivity: scores
            should get worse).
        description: one sentence, shown in the report.
        apply: ``(model, x, strength, seed) -> Perturbed``; ``strength`` is the test's noise level (minor tests;
            halved until the depth moves by less than the tolerance).
        strength: the starting noise level of a minor test (unused by disruptive ones).
    """

    name: str
    kind: str
    description: str
    apply: Callable[[DepthModel, torch.Tensor, float, int], Perturbed]
    strength: float = 0.0


TESTS: Registry[MetaTest] = Registry("meta-evaluation test")


def register_test(test: MetaTest) -> MetaTest:
    """Add ``test`` to :data:`TESTS` (a new perturbation is one call)."""
    if test.kind not in ("minor", "disruptive"):
        raise TypeError(f"meta-evaluation test {test.name!r}: kind must be minor or disruptive, not {test.kind!r}")
    return TESTS.register(test.name)(test)


def _input_noise(model: DepthModel, x: torch.Tensor, std: float, seed: int) -> Perturbed:
    noise = torch.randn(x.shape, generator=generator(seed, "meta_input")).to(x)
    return Perturbed(model, (x + std * noise).clamp(0, 1))


def _weight_noise(model: DepthModel, x: torch.Tensor, std: float, seed: int) -> Perturbed:
    noisy = copy.deepcopy(model).eval()
    g = generator(seed, "meta_weights")
    with torch.no_grad():
        for p in noisy.parameters():  # multiplicative: every weight moves by the same relative amount
            p.mul_(1 + std * torch.randn(p.shape, generator=g).to(p))
    return Perturbed(noisy, x)


def _decoder(model: DepthModel, x: torch.Tensor, strength: float, seed: int) -> Perturbed:
    """Maps of a model whose output half is randomised, scored on the real model: they explain another model."""
    return Perturbed(model, x, map_model=randomised_cascade(model, x, 2, stream_seed(seed, "meta_decoder"), first=1)[0])


def shuffled_map(a: Attribution, seed: int) -> Attribution:
    """``a`` with its pixels permuted (the same permutation for every channel and target; seeded by the image):
    the values a map has, none of its placement."""
    t, c, h, w = a.raw.shape
    order = torch.randperm(h * w, generator=generator(seed, "meta_shuffle")).to(a.raw.device)
    return Attribution(a.method, a.raw.flatten(2)[..., order].view(t, c, h, w), dict(a.info))


def inverted_map(a: Attribution, seed: int) -> Attribution:
    """``a``'s magnitude turned upside down, ``max |a| - |a|`` (one channel): the least relevant pixels first."""
    m = a.magnitude
    return Attribution(a.method, (m.amax((-2, -1), keepdim=True) - m)[:, None], dict(a.info))


register_test(MetaTest("input_noise", "minor", "Gaussian noise on the image (std in the [0, 1] pixel range)",
                       _input_noise, strength=0.01))  # fmt: skip
register_test(MetaTest("weight_noise", "minor", "every weight multiplied by 1 + Gaussian noise (relative std)",
                       _weight_noise, strength=0.01))  # fmt: skip
register_test(MetaTest("decoder_randomised", "disruptive", "the maps explain a copy whose output half of the blocks is "
                       "re-initialised; they are scored on the real model",
                       _decoder))  # fmt: skip
register_test(MetaTest("map_shuffled", "disruptive", "every map's pixels permuted",
                       lambda m, x, s, seed: Perturbed(m, x, shuffled_map)))  # fmt: skip
register_test(MetaTest("map_inverted", "disruptive", "every map's magnitude inverted (max - |a|)",
                       lambda m, x, s, seed: Perturbed(m, x, inverted_map)))  # fmt: skip
