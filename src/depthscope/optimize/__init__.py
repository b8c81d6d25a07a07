"""Cheaper models from trained ones: efficient attention (Meta, Pyra), int8 quantisation, structured pruning and
distillation, written as checkpoints that every command loads (``--model DIR/model.safetensors``)."""

from depthscope.optimize.losses import BalancedLoss
from depthscope.optimize.prune import prune_channels
from depthscope.optimize.run import OPTIMIZERS, OptimizeConfig, optimize, register_optimizer

__all__ = [
    "OPTIMIZERS",
    "BalancedLoss",
    "OptimizeConfig",
    "optimize",
    "prune_channels",
    "register_optimizer",
]
