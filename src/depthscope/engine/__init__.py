"""Engines that spread work over processes and machines: :class:`RayEngine` (optional extra ``[ray]``). The local
engine is the default of ``assess`` and ``evaluate`` and lives with them."""

from depthscope.engine.ray import RayEngine

__all__ = ["RayEngine"]
