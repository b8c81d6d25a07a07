"""Cheaper models from trained ones: efficient attention (Meta, Pyra), int8 quantisation, structured pruning and
distillation, written as checkpoints that every command loads (``--model DIR/model.safetensors``)."""

from depthscope.optimize.checkpoint import load_optimized, read_recipe, save_optimized
from depthscope.optimize.losses import BalancedLoss, ssim
from depthscope.optimize.mixers import PoolMixer, SRAttention, replace_attention
from depthscope.optimize.prune import prune_channels
from depthscope.optimize.run import OPTIMIZERS, OptimizeConfig, optimize, register_optimizer

__all__ = [
    "OPTIMIZERS",
    "BalancedLoss",
    "OptimizeConfig",
    "PoolMixer",
    "SRAttention",
    "load_optimized",
    "optimize",
    "prune_channels",
    "read_recipe",
    "register_optimizer",
    "replace_attention",
    "save_optimized",
    "ssim",
]
