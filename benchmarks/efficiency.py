"""METER XXS / XS / S side by side at 192x256 in one run: params, MACs, FLOPs, peak activation memory and CPU
latency (median and p90), with the thread count.

Run: python benchmarks/efficiency.py [--threads 2] [--repeats 30]
"""

from __future__ import annotations

import argparse

import torch
from _common import SHARED  # noqa: F401  (sets DEPTHSCOPE_WEIGHTS/DATA defaults)

from depthscope.efficiency import count_macs, count_params, measure_latency, peak_activation_bytes
from depthscope.models import load_model
from depthscope.output.tables import format_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, 192, 256)
    models = {n: load_model(n, pretrained=n == "meter-xxs-nyu") for n in ("meter-xxs-nyu", "meter-xs", "meter-s")}
    for m in models.values():  # warm every model up before any timing
        measure_latency(m, x, warmup=3, repeats=1)
    rows = []
    for name, m in models.items():
        macs = count_macs(m, x)
        lat = measure_latency(m, x, warmup=5, repeats=args.repeats)
        rows.append(
            {
                "model": name,
                "params": count_params(m),
                "GMACs": macs.macs / 1e9,
                "GFLOPs": macs.flops / 1e9,
                "peak_MB": peak_activation_bytes(m, x)[0] / 2**20,
                "latency_ms_median": lat.median_ms,
                "latency_ms_p90": lat.p90_ms,
            }
        )
    print(f"input 192x256, batch 1, cpu, threads={torch.get_num_threads()}; FLOPs = 2 x MACs")
    print(format_table(rows, digits=3))
    base = rows[0]
    for r in rows[1:]:
        print(
            f"{r['model']} / meter-xxs: params x{r['params'] / base['params']:.2f}, "
            f"MACs x{r['GMACs'] / base['GMACs']:.2f}, latency x{r['latency_ms_median'] / base['latency_ms_median']:.2f}"
        )


if __name__ == "__main__":
    main()
