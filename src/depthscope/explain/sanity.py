"""Model-parameter randomisation test (Adebayo et al., 2018), cascading from the output towards the input:
an attribution that explains the model must change once the model's weights are randomised."""

from __future__ import annotations

import copy
from typing import Any

import torch

from depthscope.explain.api import explain
from depthscope.models.hooks import forward_hooks
from depthscope.ops.stats import map_ssim, spearman


def blocks_in_forward_order(model: torch.nn.Module, x: torch.Tensor, depth: int = 2) -> list[str]:
    """Names of the network's blocks (``depth`` name components; ModuleList items count as one more) in the order
    the forward pass runs them."""
    net = model.net
    names = []
    for name, mod in net.named_modules():
        parts = name.split(".")
        want = (
            depth + 1
            if len(parts) > 1 and isinstance(net.get_submodule(".".join(parts[:2])), torch.nn.ModuleList)
            else depth
        )
        if len(parts) == want and any(True for _ in mod.parameters()):
            names.append(name)
    order: list[str] = []
    with forward_hooks(((n, net.get_submodule(n)) for n in names), lambda n, *_: order.append(n)), torch.no_grad():
        model(x)
    return list(dict.fromkeys(order))


def reinit_block(module: torch.nn.Module, gen_seed: int) -> None:
    """Re-initialise every layer of ``module`` from seed ``gen_seed`` (batch norms: weight N(1, 0.5), bias N(0, 0.5),
    fresh running statistics, so the block passes a changed signal rather than an identity)."""
    with torch.random.fork_rng(devices=[]):  # the caller's global random state is left as it was
        torch.manual_seed(gen_seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                with torch.no_grad():
                    m.weight.normal_(1.0, 0.5)
                    m.bias.normal_(0.0, 0.5)


def cascading_randomization(
    model: torch.nn.Module,
    image: torch.Tensor,
    method: str,
    target: str = "mean",
    options: dict[str, Any] | None = None,
    seed: int = 0,
    stop_after: str | None = None,
) -> list[dict[str, Any]]:
    """Randomise blocks from the output towards the input, one more at a time, and compare each map with the
    original: rows ``{block, spearman, ssim}`` (Spearman and SSIM of magnitude maps of the first target),
    until ``stop_after`` (a block name) has been randomised."""
    x = image[None] if image.dim() == 3 else image
    opts = {method: options} if options else None
    original = explain(model, x, method, target, opts)[method].magnitude[0]
    rand = copy.deepcopy(model).eval()
    rows = []
    for i, block in enumerate(reversed(blocks_in_forward_order(rand, x))):
        reinit_block(rand.net.get_submodule(block), seed + i)
        m = explain(rand, x, method, target, opts)[method].magnitude[0]
        rows.append({"block": block, "spearman": spearman(original, m), "ssim": map_ssim(original, m)})
        if block == stop_after:
            break
    return rows


__all__ = ["blocks_in_forward_order", "cascading_randomization", "reinit_block"]
