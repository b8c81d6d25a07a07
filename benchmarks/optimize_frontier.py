"""METER-XXS and its optimised variants on one Pareto plot, every point measured in this one run: CPU latency of a
480x640 NYU image (preprocessing included, interleaved rounds so that machine drift hits all models alike) and of
the network alone on its 192x256 input (``net_ms``), RMSE
and the other metrics on NYU sample images 0-4 (no variant trained or calibrated on them: the README's variants
use images 5-9), params, FLOPs, peak activation memory, and EER against METER-XXS.

Make the variants first (README, "Optimising a model"), e.g.:
    T='../shared/data/nyu_sample/image_[5-9].png'
    depthscope optimize --method int8 --train-images "$T" --out runs/opt/int8
    depthscope optimize --method pyra --steps 150 --e2e-steps 100 --train-images "$T" --out runs/opt/pyra
    depthscope optimize --method meta --steps 150 --e2e-steps 250 --train-images "$T" --out runs/opt/meta
    depthscope optimize --method prune --ratio 0.3 --steps 250 --train-images "$T" --out runs/opt/prune
Run: python benchmarks/optimize_frontier.py [--variants runs/opt/*/model.safetensors] [--threads 2]
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import torch
from _common import setup

from depthscope.efficiency import measure_latency, peak_activation_bytes, profile_model
from depthscope.efficiency.pareto import eer, pareto_table
from depthscope.efficiency.run import DEFAULT_EER_METRICS
from depthscope.metrics.evaluate import evaluate
from depthscope.models import load_model
from depthscope.output.figures import pareto_figure
from depthscope.output.files import write_csv
from depthscope.output.tables import format_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", default=sorted(glob.glob("runs/opt/*/model.safetensors")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8, help="interleaved latency rounds")
    ap.add_argument("--repeats", type=int, default=5, help="timed forwards per model per round")
    ap.add_argument(
        "--limit",
        type=int,
        default=5,
        help="evaluate on the first N NYU sample images (default 5: the README's variants trained on images 5-9)",
    )
    ap.add_argument("--out", default="runs/frontier")
    args = ap.parse_args()
    reference, data = setup(args.threads)
    models = [reference] + [load_model(p) for p in args.variants]
    names = [m.name for m in models]
    # checkpoints of one recipe (e.g. two seeds) share a model name: their folders tell them apart
    labels = [
        n if names.count(n) == 1 else f"{n} ({Path(p).parent.name})"
        for n, p in zip(names, ["", *args.variants], strict=True)
    ]
    labelled = list(zip(labels, models, strict=True))
    x = data[0].image.unsqueeze(0)
    rows = {}
    for label, m in labelled:
        row = profile_model(m, tuple(x.shape[-2:]), counts_only=True)
        result = evaluate(m, data, limit=args.limit)
        rows[label] = {
            "model": label,
            "params": row["params"],
            "flops": row["flops"],
            **{k: result.metrics[k] for k in ("rmse", "abs_rel", "delta1")},
        }
    # whole model on the 480x640 image (resize in, upsample out: what a user waits for) and the network alone on
    # its 192x256 input (where the optimisations act), interleaved round by round
    runs = {(n, "image"): (m, x) for n, m in labelled} | {(n, "net"): (m.net, m.prepare(x)) for n, m in labelled}
    lat: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
    best: dict[tuple[str, str], float] = dict.fromkeys(runs, float("inf"))
    for fn, inp in runs.values():  # warm-up
        measure_latency(fn, inp, warmup=3, repeats=1)
    for _ in range(args.rounds):
        for key, (fn, inp) in runs.items():
            m = measure_latency(fn, inp, warmup=1, repeats=args.repeats)
            lat[key].append(m.median_ms)
            best[key] = min(best[key], m.min_ms)
    # after the timings: see efficiency/profile.py (a compiled int8 network slowed down otherwise)
    for n, m in labelled:
        rows[n]["peak_memory_bytes"] = peak_activation_bytes(m, x)[0]
    ref = labels[0]
    for name, row in rows.items():
        row["latency_ms_median"] = float(np.median(lat[name, "image"]))
        row["latency_ratio"] = row["latency_ms_median"] / float(np.median(lat[ref, "image"]))
        row["net_ms"] = float(np.median(lat[name, "net"]))
        row["net_ratio"] = row["net_ms"] / float(np.median(lat[ref, "net"]))
        row["net_best_ratio"] = best[name, "net"] / best[ref, "net"]  # fastest single forward: least noisy
        row["rmse_change"] = row["rmse"] - rows[ref]["rmse"]
    table = pareto_table(list(rows.values()), "latency_ms_median", "rmse", ref, DEFAULT_EER_METRICS)
    for r in table:
        keys = ("params", "flops", "latency_ratio", "net_ms", "net_ratio", "net_best_ratio", "rmse_change", "abs_rel")
        r |= {k: rows[r["model"]][k] for k in keys}
        r["eer_with_rmse"] = eer(rows[r["model"]], rows[ref], [*DEFAULT_EER_METRICS, "rmse"])
    out = Path(args.out)
    write_csv(out / "frontier.csv", table)
    pareto_figure(table, "latency_ms_median", "rmse", out / "frontier.png")
    print(f"threads={torch.get_num_threads()}, 480x640 input, NYU sample images 0-{args.limit - 1}, EER metrics: "
          f"{', '.join(DEFAULT_EER_METRICS)} (eer_with_rmse adds rmse)")  # fmt: skip
    print(format_table(table))
    print(f"wrote {out / 'frontier.csv'} and {out / 'frontier.png'}")


if __name__ == "__main__":
    main()
