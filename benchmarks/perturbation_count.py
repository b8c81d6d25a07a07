"""How many random draws Infidelity and the Faithfulness Estimate need: the smallest count whose ranking of the
attribution methods is the same across seeds (issue 4: Spearman >= 0.9, per image, over the NYU sample).

Run: python benchmarks/perturbation_count.py [--images 10] [--seeds 3] [--size 480 640]

For each image, the maps of every method are computed once; for each seed the largest number of draws is run
once (the draws do not depend on the method) and smaller counts use its first ``n`` draws. For each count it
prints, over all images and seed pairs, the minimum and median Spearman correlation between the two seeds'
rankings of the methods, and the fraction of (image, seed pair) cases at >= 0.9.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from _common import setup

from depthscope.assess.fidelity import faithfulness_from_sums, infidelity_from_dots, noise_draws, subset_draws
from depthscope.explain import explain, target_model
from depthscope.explain.sanity import spearman

METHODS = [
    "saliency",
    "input_x_gradient",
    "integrated_gradients",
    "smoothgrad",
    "gradcam",
    "attention_rollout",
    "random",
]
COUNTS = (8, 16, 32, 64, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--size", type=int, nargs=2, default=None, help="resize images (default: 480x640 as stored)")
    ap.add_argument("--sigma", type=float, default=None, help="Infidelity noise std (default: the library's)")
    args = ap.parse_args()
    model, ds = setup()
    n_max = max(COUNTS)
    rho: dict[str, dict[int, list[float]]] = {"infidelity": {}, "faithfulness": {}}
    for i in range(min(args.images, len(ds))):
        x = ds[i].image[None]
        if args.size:
            x = torch.nn.functional.interpolate(x, size=tuple(args.size), mode="bilinear", antialias=True)
        attrs = explain(model, x, METHODS)
        fm = target_model(model, x, "mean")
        scores: dict[str, dict[int, list[np.ndarray]]] = {"infidelity": {}, "faithfulness": {}}
        for seed in range(args.seeds):
            nd = noise_draws(fm, x, n_max, seed=1000 * seed + i, **({"sigma": args.sigma} if args.sigma else {}))
            sd = subset_draws(fm, x, n_max, seed=1000 * seed + i)
            dots = {m: (nd.perturbation * attrs[m].raw[:1]).sum(dim=(1, 2, 3)).double() for m in METHODS}
            sums = {m: (sd.perturbation[:, 0] * attrs[m].signed[0]).sum(dim=(-2, -1)) for m in METHODS}
            for n in COUNTS:
                inf = [infidelity_from_dots(dots[m][:n], nd.drop[:n]).value for m in METHODS]
                fe = [faithfulness_from_sums(sums[m][:n], sd.drop[:n]).value for m in METHODS]
                scores["infidelity"].setdefault(n, []).append(np.array(inf))
                scores["faithfulness"].setdefault(n, []).append(np.array(fe))
        for metric, by_n in scores.items():
            for n, per_seed in by_n.items():
                for a, b in itertools.combinations(per_seed, 2):
                    rho[metric].setdefault(n, []).append(spearman(torch.tensor(a), torch.tensor(b)))
        print(f"image {i}: done ({', '.join(METHODS)})", flush=True)

    size = "x".join(map(str, args.size)) if args.size else "480x640"
    print(f"\n{args.images} images x {args.seeds * (args.seeds - 1) // 2} seed pairs, {len(METHODS)} methods, {size}")
    for metric, by_n in rho.items():
        print(f"{metric}: Spearman of the method ranking between seeds")
        chosen = None
        for n in COUNTS:
            r = np.array(by_n[n])
            ok = (r >= 0.9).mean()
            print(f"  n={n:4d}: min {r.min():.3f}  median {np.median(r):.3f}  share >= 0.9: {ok:.2f}")
            if chosen is None and ok == 1.0:
                chosen = n
        print(f"  smallest count with Spearman >= 0.9 for every image and seed pair: {chosen or 'none tested'}")


if __name__ == "__main__":
    main()
