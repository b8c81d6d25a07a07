"""evaluate's images/s against the bare model forward on the same (pre-loaded) images, in one run.

Run: python benchmarks/evaluate_throughput.py   (goal: ratio >= 0.8)
"""

from __future__ import annotations

import torch
from _common import best_time, setup

from depthscope.metrics.depth import evaluate_depth
from depthscope.metrics.evaluate import evaluate


def main() -> None:
    model, ds = setup()
    samples = list(ds)
    images = [s.image.unsqueeze(0) for s in samples]
    n = len(images)

    def bare() -> None:
        with torch.no_grad():
            for x in images:
                model(x)

    t_bare = best_time(bare)
    t_eval = best_time(lambda: evaluate(model, ds, crop="eigen"))
    print(f"threads={torch.get_num_threads()} images={n} (480x640, read from disk by evaluate)")
    print(f"bare forward : {n / t_bare:7.2f} images/s")
    print(f"evaluate     : {n / t_eval:7.2f} images/s (decode + forward + metrics)")
    print(f"ratio evaluate/bare = {t_bare / t_eval:.3f}  (goal >= 0.8)")
    # What bounds the ratio on this machine: work evaluate must do besides the forward, per image.
    t_read = best_time(lambda: [ds[i] for i in range(n)]) / n
    preds = [model(x).detach()[0, 0] for x in images]
    t_score = (
        best_time(lambda: [evaluate_depth(p, s.depth, 1e-3, 10, "eigen") for p, s in zip(preds, samples, strict=True)])
        / n
    )
    t_fwd1 = best_time(lambda: single_thread(bare)) / n
    print(
        f"per image: PNG decode {t_read * 1e3:.1f} ms, metrics {t_score * 1e3:.1f} ms, "
        f"forward {t_bare / n * 1e3:.1f} ms (2 threads) / {t_fwd1 * 1e3:.1f} ms (1 thread)"
    )
    bound = (t_bare / n) / max(t_fwd1, t_read + t_score)
    print(f"pipeline bound (1-thread forward beside a decode+score core): ratio <= {bound:.3f}")


def single_thread(fn) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fn()
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
