"""Integrated Gradients speed against Captum and against the model's own forward+backward floor, in one run.

Run: python benchmarks/explain_speed.py [--images N] [--grid-images N] [--device cpu|cuda] [--threads 2]

Prints (issue 3), on meter-xxs-nyu and the NYU sample (480x640 images):
  (a) our IG (50 Gauss-Legendre steps, whole-map target) / Captum IG at its best ``internal_batch_size`` of
      {1, 2, 5, 10, 25, 50}, the best chosen on the first image       -- goal <= 1.0
  (b) our IG / (50 x best per-sample forward+backward time)            -- goal <= 1.2
  (c) 16-target grid IG: Captum in a loop over targets / ours          -- goal >= 1.5
      and ours / (50 x best per-sample (forward + 16 backward))        -- goal <= 1.2
Every time is the best of ``--repeats`` after one warm-up; all of them are taken in this one process.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import torch
from _common import best_time, setup

from depthscope.explain import target_model
from depthscope.explain.gradients import integrated_gradients
from depthscope.ops.batching import _CHUNK_CACHE

CAPTUM_BATCHES = (1, 2, 5, 10, 25, 50)
N_STEPS = 50


def floor_per_sample(fm: torch.nn.Module, x: torch.Tensor, best: Callable, batches=CAPTUM_BATCHES) -> float:
    """Best per-sample time of one forward plus one backward per target, over the batch sizes ``batches``."""

    def fwd_bwd(xb: torch.Tensor) -> None:
        xb = xb.detach().requires_grad_()
        out = fm(xb)
        for t in range(out.shape[1]):
            torch.autograd.grad(out[:, t].sum(), xb, retain_graph=t < out.shape[1] - 1)

    return min(best(lambda c=c: fwd_bwd(x.expand(c, -1, -1, -1).clone())) / c for c in batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=3, help="NYU sample images for (a) and (b)")
    ap.add_argument("--grid-images", type=int, default=1, help="images for (c); Captum's loop is 16x the cost")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    from captum.attr import IntegratedGradients

    model, ds = setup(args.threads)
    dev = torch.device(args.device)
    model = model.to(dev)
    best = functools.partial(best_time, repeats=args.repeats, device=dev)
    images = [ds[i].image.unsqueeze(0).to(dev) for i in range(args.images)]
    print(f"device={dev} threads={torch.get_num_threads()} input=480x640 IG steps={N_STEPS} (gausslegendre)")

    # Captum's best internal_batch_size, chosen by measurement on the first image.
    fm0 = target_model(model, images[0], "mean")
    ig0 = IntegratedGradients(fm0)
    captum_times = {
        b: best(lambda b=b: ig0.attribute(images[0], target=0, n_steps=N_STEPS, internal_batch_size=b))
        for b in CAPTUM_BATCHES
    }
    print("captum IG by internal_batch_size: " + ", ".join(f"{b}: {t:.2f}s" for b, t in captum_times.items()))
    cb = min(captum_times, key=captum_times.get)

    n = len(images)
    t_ours, t_captum, t_floor = totals(model, images, "mean", cb, best)
    chunk = next(v for k, v in _CHUNK_CACHE.items() if k[2] == 1 and k[4])
    print(f"\nwhole-map target, {n} images (ours: chunk {chunk} chosen by tune_chunk_size; captum: batch {cb})")
    print(f"  ours {t_ours / n:.2f}s  captum {t_captum / n:.2f}s  50 x fwd+bwd floor {t_floor / n:.2f}s per image")
    print(f"  (a) ours / captum(best batch)      = {t_ours / t_captum:.3f}  (goal <= 1.0)")
    print(f"  (b) ours / (50 x fwd+bwd)          = {t_ours / t_floor:.3f}  (goal <= 1.2)")

    n = args.grid_images
    t_ours, t_loop, t_floor = totals(model, images[:n], "grid:4", cb, best)
    print(f"\n16-target grid (grid:4), {n} image(s)")
    print(f"  ours {t_ours / n:.2f}s  captum loop {t_loop / n:.2f}s  50 x (fwd + 16 bwd) floor {t_floor / n:.2f}s")
    print(f"  (c) captum loop / ours             = {t_loop / t_ours:.3f}  (goal >= 1.5)")
    print(f"  (c) ours / (50 x (fwd + 16 bwd))   = {t_ours / t_floor:.3f}  (goal <= 1.2)")
    print(
        "\nours runs only the network per node (prepare/finish are affine, so gradients map to the image once:"
        " TargetModel.factorised); captum and the floor run the whole wrapped model per sample."
    )


def totals(model, images, target: str, captum_batch: int, best) -> tuple[float, float, float]:
    """Summed (ours, captum looping over targets, 50 x per-sample floor) times over ``images``."""
    from captum.attr import IntegratedGradients

    t_ours = t_captum = t_floor = 0.0
    for x in images:
        fm = target_model(model, x, target)
        ig = IntegratedGradients(fm)
        n_targets = fm.weights.shape[0]

        def captum(ig=ig, x=x, n_targets=n_targets) -> None:
            for t in range(n_targets):
                ig.attribute(x, target=t, n_steps=N_STEPS, internal_batch_size=captum_batch)

        t_captum += best(captum)
        t_ours += best(lambda fm=fm, x=x: integrated_gradients(fm, x, n_steps=N_STEPS))
        t_floor += N_STEPS * floor_per_sample(fm, x, best)
    return t_ours, t_captum, t_floor


if __name__ == "__main__":
    main()
