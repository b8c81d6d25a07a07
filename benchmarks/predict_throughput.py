"""predict's images/s against the bare model forward on the same (pre-loaded) images, in one run, per format set.

predict reads every image from disk, runs the forward pass in batches and encodes the maps in a writer thread;
the bare forward sees the same images already decoded, in the same batches. Run:

    python benchmarks/predict_throughput.py   (goal: ratio >= 0.8 for the default formats npy,png16)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import setup

from depthscope.data.images import find_images
from depthscope.data.io import read_image
from depthscope.output.depth import Intrinsics, encode_color, encode_npy, encode_ply, encode_png16
from depthscope.predict import predict

NYU_K = "518.8579,519.4696,325.5824,253.7362"
ROUNDS = 4


def main() -> None:
    model, ds = setup()
    src = find_images(ds.root)
    images = [read_image(f) for f in src.files]
    n = len(images)
    print(f"threads={torch.get_num_threads()} images={n} (480x640 PNG, read from disk by predict)")
    formats_sets = ("npy,png16", "npy", "npy,png16,color", "npy,png16,color,ply")
    for batch in (1, 4):
        batches = [torch.stack(images[i : i + batch]) for i in range(0, n, batch)]

        def bare(batches=batches) -> None:
            with torch.no_grad():
                for x in batches:
                    model(x)

        def run(formats: str, batch: int = batch) -> None:
            with tempfile.TemporaryDirectory() as d:  # a fresh folder: nothing to skip
                predict(model, src, Path(d) / "o", formats, intrinsics=NYU_K, batch=batch)

        # interleaved rounds, best of each: this VM's speed drifts by 10-30 % between minutes, alike for all
        jobs = {"bare": bare, **{f: (lambda f=f: run(f)) for f in formats_sets}}
        best = dict.fromkeys(jobs, float("inf"))
        for job in jobs.values():
            job()  # warm-up
        for _ in range(ROUNDS):
            for name, job in jobs.items():
                t0 = time.perf_counter()
                job()
                best[name] = min(best[name], time.perf_counter() - t0)
        print(f"\nbatch {batch}: bare forward {n / best['bare']:6.2f} images/s")
        for f in formats_sets:
            print(f"  predict {f:20s} {n / best[f]:6.2f} images/s   ratio predict/bare = {best['bare'] / best[f]:.3f}")
    # What bounds the ratio: per image, the work besides the forward (the writer thread runs it beside the model)
    with torch.no_grad():
        depth = model(images[0][None])[0, 0].numpy()
    rgb = (images[0].permute(1, 2, 0) * 255).round().byte().numpy()
    cam = Intrinsics.parse(NYU_K)
    costs = {
        "decode PNG": lambda: read_image(src.files[0]),
        "npy": lambda: encode_npy(depth),
        "png16": lambda: encode_png16(depth, 1000.0),
        "color": lambda: encode_color(depth),
        "ply": lambda: encode_ply(depth, rgb, cam),
    }
    print("\nper image (ms): " + ", ".join(f"{k} {1e3 * timed(f):.1f}" for k, f in costs.items()))


def timed(fn, repeats: int = 5) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    main()
