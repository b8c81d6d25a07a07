"""``explain``: attribution maps of one image for one or several methods and targets."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from depthscope.data.io import check_image_tensor, read_image
from depthscope.errors import InputError
from depthscope.explain.attribution import METHODS, Attribution, methods_without_gradients
from depthscope.explain.targets import TargetModel, parse_target
from depthscope.models import DepthModel, load_model


def as_batch(image: torch.Tensor | str | os.PathLike, device: torch.device | str = "cpu") -> torch.Tensor:
    """An image path, tensor or numpy array (``(3,H,W)``/``(1,3,H,W)``/``(H,W,3)``) in [0, 1] -> ``(1,3,H,W)`` on
    ``device``; anything else is one clear error (:func:`~depthscope.data.io.check_image_tensor`)."""
    x = read_image(image) if isinstance(image, str | os.PathLike) else check_image_tensor(image)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.shape[0] != 1:
        raise InputError(f"explain takes one image, got a batch of {x.shape[0]}; explain them one at a time")
    return x.to(device=device, dtype=torch.float32)


def target_model(model: DepthModel, x: torch.Tensor, target: str | torch.Tensor = "mean") -> TargetModel:
    """The ``(B, T)`` target model for ``target`` (a spec such as ``grid:4``, or weights ``(T, H, W)``)."""
    h, w = x.shape[-2:]
    if isinstance(target, str):
        depth = None
        if target.split(":")[0] in ("near", "far"):
            with torch.no_grad():
                depth = model(x)[0, 0]
        weights = parse_target(target, h, w, depth)
    else:
        weights = check_target_weights(target, h, w)
    return TargetModel(model, weights.to(x.device))


def check_target_weights(target: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """User target weights ``(H, W)`` or ``(T, H, W)``, each target scaled to sum 1 (every target is a weighted
    mean of the depth map, in metres). Non-finite, negative or all-zero weights are one clear error."""
    if not isinstance(target, torch.Tensor):
        raise InputError(
            f"target must be a spec string (mean, box:..., pixel:...) or a tensor, got {type(target).__name__}"
        )
    weights = (target if target.dim() == 3 else target.unsqueeze(0)).double()
    if weights.dim() != 3 or tuple(weights.shape[-2:]) != (h, w):
        raise InputError(f"target weights {tuple(target.shape)} do not match the image ({h}, {w})")
    if not torch.isfinite(weights).all():
        raise InputError("target weights contain NaN or Inf")
    if (weights < 0).any():
        raise InputError("target weights must be >= 0 (a mask or a weighting of the pixels)")
    sums = weights.sum(dim=(-2, -1))
    if (sums == 0).any():
        raise InputError(f"target weights of target(s) {(sums == 0).nonzero().flatten().tolist()} are all zero")
    return (weights / sums.view(-1, 1, 1)).float()


def check_gradients(model: DepthModel, methods: Sequence[str]) -> None:
    """One error, before any work, if ``model`` runs int8 kernels (no gradients) and some of ``methods`` need them:
    the error names those methods and the ones that can run.

    Example:
        >>> import depthscope as ds
        >>> check_gradients(ds.load_model("meter-xxs-nyu"), ["saliency", "attention_rollout"])  # float: no error
    """
    needs_grad = [n for n in methods if METHODS.get(n).needs_grad]
    if needs_grad and not model.differentiable:
        raise InputError(
            f"{model.name} runs int8 kernels, which have no gradients: {', '.join(needs_grad)} cannot run on it; "
            f"use {', '.join(methods_without_gradients())}, or explain the float model it came from"
        )


def explain(
    model: DepthModel | str,
    image: torch.Tensor | str | os.PathLike,
    methods: str | Sequence[str] = "saliency",
    target: str | torch.Tensor = "mean",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> dict[str, Attribution]:
    """Attribution maps of ``image`` under ``model`` for each method, all targets of the image explained together.

    Args:
        model: a :class:`DepthModel` or a model name for :func:`depthscope.load_model`.
        image: an image file or a tensor ``(3, H, W)`` / ``(1, 3, H, W)`` in [0, 1].
        methods: method names (a list or comma-separated); see ``depthscope.explain.METHODS``.
        target: what is explained: ``mean`` | ``box:y0,x0,y1,x1`` | ``pixel:y,x`` | ``grid:G`` | ``near:Q`` |
            ``far:Q`` | ``mask:PATH``, or target weights ``(T, H, W)``.
        options: per method, its keyword options, e.g. ``{"integrated_gradients": {"n_steps": 32}}``; an option
            the method does not have is an error naming its valid ones.
        device: where to load ``model`` when it is a name.
        seed: passed to the methods that declare ``seeded`` (SmoothGrad, random, noise baselines); each draws from
            its own stream, so equal seeds never mean shared numbers.

    Returns:
        ``{method: Attribution}``; ``Attribution.magnitude`` and ``.signed`` are ``(T, H, W)`` at the image's size.

    Example:
        >>> import depthscope as ds
        >>> from depthscope.data import find_data
        >>> maps = ds.explain("meter-xxs-nyu", find_data() / "image_0.png", "saliency", target="grid:2")
        >>> tuple(maps["saliency"].magnitude.shape)
        (4, 480, 640)
    """
    if isinstance(model, str):
        model = load_model(model, device=device or "cpu")
    model.eval()
    dev = model.device
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    specs = {name: METHODS.get(name) for name in names}  # unknown names fail before any work
    check_gradients(model, names)
    options = dict(options or {})
    unknown = set(options) - set(names)
    if unknown:
        raise InputError(f"options given for methods not requested: {', '.join(sorted(unknown))}")
    x = as_batch(image, dev)
    fmodel = target_model(model, x, target)
    return {name: _detach(spec(fmodel, x, seed, **options.get(name, {})), name) for name, spec in specs.items()}


def _detach(a: Attribution, name: str) -> Attribution:
    """``a`` without its autograd graph, named by the method's registry name (what a metric re-explains with)."""
    a.raw, a.method = a.raw.detach(), name
    return a
