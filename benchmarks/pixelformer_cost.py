"""PixelFormer-large07 (random weights) at 480x640 on one NYU sample image: forward latency, one forward+backward
(the floor), Attention Rollout, and one Integrated Gradients map at n_steps=16, with the ratio of IG to 16 x the
floor. Run on the GPU machine with ``--device cuda``; on 2 CPU threads it takes a few minutes.

    python benchmarks/pixelformer_cost.py [--device cuda] [--steps 16]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import best_time, setup

from depthscope.explain import explain
from depthscope.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    _, ds = setup(args.threads)
    torch.manual_seed(0)
    model = load_model("pixelformer-large07-nyu", pretrained=False, device=args.device)
    x = ds[0].image.unsqueeze(0).to(args.device)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        xi = x.clone().requires_grad_(True)
        model(xi).mean().backward()

    def ig() -> None:
        explain(model, x, "integrated_gradients", options={"integrated_gradients": {"n_steps": args.steps}})

    fwd = best_time(forward, repeats=3, device=args.device)
    fb = best_time(forward_backward, repeats=2, device=args.device)
    t0 = time.perf_counter()
    explain(model, x, "attention_rollout")
    rollout_s = time.perf_counter() - t0
    ig_s = best_time(ig, repeats=1, warmup=1, device=args.device)  # the warm-up run also tunes the chunk size
    device = torch.cuda.get_device_name(0) if torch.device(args.device).type == "cuda" else f"cpu x{args.threads}"
    print(f"PixelFormer-large07, random weights, 480x640, {device}")
    print(f"forward                 {fwd * 1e3:10.1f} ms")
    print(f"forward+backward        {fb * 1e3:10.1f} ms")
    print(f"attention rollout       {rollout_s * 1e3:10.1f} ms  ({rollout_s / fwd:.2f} x forward)")
    print(
        f"IG n_steps={args.steps:<3}          {ig_s * 1e3:10.1f} ms  (ours / {args.steps} x fwd+bwd = {ig_s / (args.steps * fb):.2f})"
    )


if __name__ == "__main__":
    main()
