"""The result type of every attribution method, and the method registry with each method's declared spec.

A method is one decorated function ``(target_model, image (1,3,H,W), **options) -> Attribution``, where
``target_model`` maps images to ``(B, T)`` target values. Its :class:`MethodSpec` says what it needs (a backward
pass, a seed, a layer) and its options' defaults come from its signature: ``explain`` derives the int8 refusal,
the seeding and option checking from it, so adding a method is one function in one file (README, "Extending").
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from depthscope.config import coerce
from depthscope.errors import InputError
from depthscope.registry import Registry


@dataclass
class Attribution:
    """Attributions of ``T`` targets for one image.

    ``raw`` is ``(T, C, H, W)`` at the input image's resolution: ``C = 3`` (RGB channels) for pixel-gradient
    methods, ``C = 1`` for map-valued methods (Grad-CAM, Occlusion, Rollout, random). Units: target metres per
    unit of input intensity (gradients) or metres (IG, Occlusion); rollout and random are unitless.
    """

    method: str
    raw: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def signed(self) -> torch.Tensor:
        """``(T, H, W)``: sum over channels (sign kept)."""
        return self.raw.sum(1)

    @property
    def magnitude(self) -> torch.Tensor:
        """``(T, H, W)``: L1 norm over channels, the ranking used by perturbation curves."""
        return self.raw.abs().sum(1)


AttributionMethod = Callable[..., Attribution]


@dataclass(frozen=True)
class MethodSpec:
    """A registered attribution method and what it declares.

    Attributes:
        name: the registry name (``--methods NAME``).
        fn: ``(target_model, x, **options) -> Attribution``.
        needs_grad: it differentiates the model (so it cannot run on int8 kernels).
        seeded: it draws random numbers; ``explain(..., seed=s)`` passes ``seed`` to it, and a dataset run gives
            each image its own seed, each method its own stream (:mod:`depthscope.seeding`).
        uses_layer: it reads an inner layer (``layer`` option; default from the model's config).
        cost: ``cost(options, h, w) -> (forwards, backwards)`` of one map of an ``h x w`` image with ``options``
            (the defaults filled in): what ``assess --dry-run`` plans with. Default: one forward, and one backward
            when ``needs_grad``.
    """

    name: str
    fn: AttributionMethod
    needs_grad: bool
    seeded: bool = False
    uses_layer: bool = False
    cost: Callable[[Mapping[str, Any], int, int], tuple[int, int]] | None = None

    def passes(self, options: Mapping[str, Any] | None, h: int, w: int) -> tuple[int, int]:
        """``(forwards, backwards)`` of one map of an ``h x w`` image with ``options`` (see ``cost``)."""
        if self.cost is None:
            return (1, int(self.needs_grad))
        return self.cost({**self.defaults, **self.check_options(options or {})}, h, w)

    @property
    def description(self) -> str:
        """The first line of the method's docstring."""
        return (inspect.getdoc(self.fn) or "").split("\n")[0]

    @property
    def defaults(self) -> dict[str, Any]:
        """The method's options and their defaults, from its signature (``seed`` excluded: it is per image)."""
        params = list(inspect.signature(self.fn).parameters.values())[2:]
        return {p.name: p.default for p in params if p.name != "seed" and p.default is not inspect.Parameter.empty}

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` checked against the method's signature and coerced to its annotated types (the CLI's
        ``--option`` values arrive as JSON or text): one clear error for an unknown option or a wrong type."""
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            valid = ", ".join(self.defaults) or "none"
            raise InputError(f"{self.name} has no option {', '.join(map(repr, unknown))}; its options: {valid}")
        hints = typing.get_type_hints(self.fn)
        return {
            k: v if torch.is_tensor(v) else coerce(v, hints.get(k, Any), f"{self.name}.{k}") for k, v in options.items()
        }

    def __call__(self, fmodel: torch.nn.Module, x: torch.Tensor, seed: int = 0, **options: Any) -> Attribution:
        return self.fn(fmodel, x, **self.check_options(options), **({"seed": seed} if self.seeded else {}))


METHODS: Registry[MethodSpec] = Registry("attribution method")


def register_method(
    name: str,
    *,
    needs_grad: bool,
    seeded: bool = False,
    uses_layer: bool = False,
    cost: Callable[[Mapping[str, Any], int, int], tuple[int, int]] | None = None,
) -> Callable[[AttributionMethod], AttributionMethod]:
    """Decorator: register ``fn`` as attribution method ``name`` with its spec (see :class:`MethodSpec`).

    Args:
        name: the method's registry name.
        needs_grad: ``fn`` differentiates the model (refused on int8 models).
        seeded: ``fn`` takes ``seed`` and draws random numbers from it (its signature must match).
        uses_layer: ``fn`` reads an inner layer (``layer`` option).
        cost: ``(options, h, w) -> (forwards, backwards)`` of one map (default: one forward, one backward when
            ``needs_grad``): the cost plan of ``assess --dry-run``.

    Returns:
        A decorator that registers ``fn`` and returns it unchanged.

    Example:
        >>> @register_method("doc_example_ones", needs_grad=False)
        ... def ones(fmodel, x):
        ...     return Attribution("doc_example_ones", torch.ones(fmodel.weights.shape[0], 1, *x.shape[-2:]))
        >>> METHODS.get("doc_example_ones").needs_grad
        False
        >>> METHODS.unregister("doc_example_ones")
    """

    def deco(fn: AttributionMethod) -> AttributionMethod:
        seeded_arg = "seed" in inspect.signature(fn).parameters
        if seeded != seeded_arg:
            raise TypeError(
                f"method {name!r}: seeded={seeded} but its signature {'has' if seeded_arg else 'lacks'} seed"
            )
        METHODS.register(name)(MethodSpec(name, fn, needs_grad, seeded, uses_layer, cost))
        return fn

    return deco


def methods_without_gradients() -> list[str]:
    """Registered methods that need no backward pass (those that run on int8 models)."""
    return [n for n in METHODS.names() if not METHODS.get(n).needs_grad]
