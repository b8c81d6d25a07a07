"""Efficiency: parameters, MACs/FLOPs, peak memory, latency, throughput, EER and Pareto frontiers (SPEC §5)."""

from depthscope.efficiency.flops import MacCount, count_macs
from depthscope.efficiency.latency import Latency, measure_latency, throughput
from depthscope.efficiency.memory import peak_activation_bytes
from depthscope.efficiency.params import count_params, param_bytes
from depthscope.efficiency.pareto import eer, pareto_front, pareto_table
from depthscope.efficiency.profile import explain_seconds, profile, profile_model
from depthscope.efficiency.run import pareto

__all__ = [
    "Latency",
    "MacCount",
    "count_macs",
    "count_params",
    "eer",
    "explain_seconds",
    "measure_latency",
    "param_bytes",
    "pareto",
    "pareto_front",
    "pareto_table",
    "peak_activation_bytes",
    "profile",
    "profile_model",
    "throughput",
]
