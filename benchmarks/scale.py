"""Local engine vs the Ray engine on the same assessment, in one run on this machine (issue 17).

Run: python benchmarks/scale.py [--images 10] [--methods saliency,integrated_gradients,attention_rollout,random]
     [--metrics ...] [--out runs/scale]

Three runs of ``depthscope.assess`` on meter-xxs-nyu over the first ``--images`` NYU sample images, each into a
fresh folder, at one fixed chunk size (so all three batch alike):

- local: this process, all cores (torch's threads);
- ray x1: one Ray worker given all cores (a local Ray started and stopped by the run): its wall time minus the
  local one, per image, is what Ray costs per image (start-up, model load in the worker, scheduling, transfer);
- ray x2: two Ray workers with the cores split between them: the speed-up over local.

For each it prints the wall time, the cost plan's projection (``plan.json``: the plan is made in the run, from a
probe of the first image) and measured / planned, and checks that the three ``results.csv`` agree.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from pathlib import Path

from _common import SHARED  # noqa: F401  (sets DEPTHSCOPE_WEIGHTS / DEPTHSCOPE_DATA)

import depthscope as ds
from depthscope.assess.config import DEFAULT_METRICS
from depthscope.data import find_data
from depthscope.engine import RayEngine


def run(name: str, out: Path, config: ds.AssessConfig, images: int, engine: RayEngine | None) -> dict:
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    ds.assess(["meter-xxs-nyu"], str(find_data()), config, folder, limit=images, engine=engine, chunk_size=8)
    wall = time.perf_counter() - t0
    plan = json.loads((folder / "plan.json").read_text())["meter-xxs-nyu"]
    rows = {(r["method"], r["image"]): r for r in csv.DictReader(open(folder / "results.csv"))}
    return {"name": name, "wall": wall, "planned": plan["projected_s"], "loop": plan["measured_wall_s"], "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--methods", default="saliency,integrated_gradients,attention_rollout,random")
    ap.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    ap.add_argument("--out", default="runs/scale")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    config = ds.AssessConfig(methods=args.methods, metrics=args.metrics)
    out = Path(args.out)
    results = [
        run("local", out, config, args.images, None),
        run("ray x1", out, config, args.images, RayEngine(workers=1, cpus_per_worker=cores)),
        run("ray x2", out, config, args.images, RayEngine(workers=2, cpus_per_worker=max(1, cores // 2))),
    ]
    n = args.images
    print(f"\nmeter-xxs-nyu, {n} NYU images, {args.methods} x {args.metrics}, {cores} cores")
    print(
        f"{'run':8s} {'wall s':>8s} {'s/image':>8s} {'image loop s':>12s} {'planned s':>10s} {'measured/planned':>17s}"
    )
    for r in results:
        ratio = r["loop"] / r["planned"]
        print(
            f"{r['name']:8s} {r['wall']:8.1f} {r['wall'] / n:8.2f} {r['loop']:12.1f} {r['planned']:10.1f} {ratio:17.2f}"
        )
    local, one, two = results
    print(f"speed-up ray x2 vs local (wall): {local['wall'] / two['wall']:.2f}x")
    print(
        f"Ray overhead per image (ray x1 - local, wall, start-up included): {(one['wall'] - local['wall']) / n:+.2f} s"
    )
    print(f"Ray overhead per image in the image loop only: {(one['loop'] - local['loop']) / n:+.2f} s")
    for r in (one, two):
        assert r["rows"].keys() == local["rows"].keys(), f"{r['name']}: other rows than local"
        worst = max(
            abs(float(r["rows"][k]["af_perturbation"]) - float(v["af_perturbation"])) for k, v in local["rows"].items()
        ) if "curves" in config.metrics else 0.0  # fmt: skip
        print(f"{r['name']}: same {len(r['rows'])} rows as local; largest af_perturbation difference {worst:.2e}")


if __name__ == "__main__":
    main()
