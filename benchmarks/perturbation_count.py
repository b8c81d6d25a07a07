"""How many random draws Infidelity and the Faithfulness Estimate need: the smallest count whose ranking of the
attribution methods is the same across seeds (issue 4: Spearman >= 0.9, per image, over the NYU sample).

Run: python benchmarks/perturbation_count.py [--images 10] [--seeds 3] [--size H W] [--sigma S] [--symmetric]

For each image the maps of every method are computed once; for each seed the largest number of draws is run once
(the draws do not depend on the method) and smaller counts use its first ``n`` draws. Two rankings are compared:

- plain: methods ordered by their score;
- tie-aware: methods whose scores lie within ``--margin`` of each other (a chain of gaps <= margin) share their
  average rank. The scores are scale-free for this: infidelity divided by the mean squared drop (the fraction of
  the drop's energy the map leaves unexplained, 0..1), the Faithfulness Estimate a correlation (-1..1).

For each count it prints, over all images and seed pairs, the minimum and median Spearman correlation between the
seeds' rankings, the share of cases at >= 0.9, and the mean number of rank levels (how much the score separates
the methods at all; 1 = it cannot tell any of them apart).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable

import numpy as np
import torch
from _common import setup

from depthscope.assess.fidelity import noise_draws, pearson, subset_draws
from depthscope.explain import explain, target_model

METHODS = [
    "saliency",
    "input_x_gradient",
    "integrated_gradients",
    "smoothgrad",
    "gradcam",
    "attention_rollout",
    "random",
]
COUNTS = (8, 16, 32, 64, 128, 256)


def infidelity_stat(dots: torch.Tensor, drop: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``idx (B, n) -> (B, M)`` normalised infidelity of every method on the draws ``idx``, divided by the mean
    squared drop on those draws (lower is better; the same order as the library's score)."""

    def stat(idx: torch.Tensor) -> torch.Tensor:
        d, y = dots[:, idx], drop[idx]  # (M, B, n), (B, n)
        beta = (d * y).sum(-1) / (d * d).sum(-1).clamp_min(1e-30)
        return (((beta.unsqueeze(-1) * d - y) ** 2).mean(-1) / (y * y).mean(-1).clamp_min(1e-30)).T

    return stat


def faithfulness_stat(sums: torch.Tensor, drop: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``idx (B, n) -> (B, M)`` minus the Faithfulness Estimate (so lower is better, like infidelity)."""

    def stat(idx: torch.Tensor) -> torch.Tensor:
        s, y = sums[:, idx], drop[idx]
        s, y = s - s.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
        r = (s * y).sum(-1) / (s.norm(dim=-1) * y.norm(dim=-1)).clamp_min(1e-30)
        return -r.T

    return stat


def margin_ranks(scores: torch.Tensor, margin: float) -> np.ndarray:
    """Ranks (1 = best = lowest score) in which methods tie when their scores form a chain of gaps <= ``margin``
    (sorted scores split where a gap exceeds it); tied methods share their average rank. Methods whose expected
    scores are equal (maps the draws cannot tell apart) then share a rank instead of swapping places at random."""
    order = torch.argsort(scores)
    ranks = np.empty(len(order))
    start = 0  # the current group is order[start:k]
    for k in range(1, len(order) + 1):
        if k == len(order) or scores[order[k]] - scores[order[k - 1]] > margin:
            ranks[order[start:k].numpy()] = (start + 1 + k) / 2  # the mean of positions start + 1 .. k
            start = k
    return ranks


def rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two rank vectors (Pearson on ranks); two all-tied rankings agree (1)."""
    if a.std() == 0 or b.std() == 0:
        return 1.0 if a.std() == b.std() == 0 else 0.0
    return pearson(torch.tensor(a), torch.tensor(b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    ap.add_argument("--size", type=int, nargs=2, default=None, help="resize images (default: 480x640 as stored)")
    ap.add_argument("--sigma", type=float, default=0.1, help="Infidelity noise std (default 0.1, the library's)")
    ap.add_argument("--margin", type=float, default=0.02, help="tie margin of the scale-free scores (default 0.02)")
    ap.add_argument(
        "--symmetric", action="store_true", help="infidelity on the odd part (f(x+I) - f(x-I)) / 2 of the response"
    )
    args = ap.parse_args()
    model, ds = setup()
    counts, n_max = sorted(args.counts), max(args.counts)
    # ranks[metric][kind][n] -> one rank vector per seed (per image); results/levels gather over images
    results = {m: {"plain": {}, "tie-aware": {}} for m in ("infidelity", "faithfulness")}
    levels: dict[str, dict[int, list[int]]] = {m: {} for m in results}
    for i in range(min(args.images, len(ds))):
        x = ds[i].image[None]
        if args.size:
            x = torch.nn.functional.interpolate(x, size=tuple(args.size), mode="bilinear", antialias=True)
        attrs = explain(model, x, METHODS)
        fm = target_model(model, x, "mean")
        ranks: dict[str, dict[str, dict[int, list[np.ndarray]]]] = {m: {"plain": {}, "tie-aware": {}} for m in results}
        for seed in range(args.seeds):
            nd = noise_draws(fm, x, n_max, sigma=args.sigma, seed=1000 * seed + i, symmetric=args.symmetric)
            sd = subset_draws(fm, x, n_max, seed=1000 * seed + i)
            dots = torch.stack([(nd.perturbation * attrs[m].raw[:1]).sum(dim=(1, 2, 3)).double() for m in METHODS])
            sums = torch.stack(
                [(sd.perturbation[:, 0] * attrs[m].signed[0]).sum(dim=(-2, -1)).double() for m in METHODS]
            )
            stats = {
                "infidelity": infidelity_stat(dots, nd.drop),
                "faithfulness": faithfulness_stat(sums, sd.drop.double()),
            }
            for metric, stat in stats.items():
                for n in counts:
                    point = stat(torch.arange(n)[None])[0]
                    tied = margin_ranks(point, args.margin)
                    ranks[metric]["plain"].setdefault(n, []).append(torch.argsort(torch.argsort(point)).numpy() + 1.0)
                    ranks[metric]["tie-aware"].setdefault(n, []).append(tied)
                    levels[metric].setdefault(n, []).append(len(np.unique(tied)))
        for metric, by_kind in ranks.items():
            for kind, by_n in by_kind.items():
                for n, per_seed in by_n.items():
                    for a, b in itertools.combinations(per_seed, 2):
                        results[metric][kind].setdefault(n, []).append(rank_agreement(a, b))
        print(f"image {i}: done", flush=True)

    size = "x".join(map(str, args.size)) if args.size else "480x640"
    draws = f"sigma {args.sigma}" + (", symmetric" if args.symmetric else "") + f", tie margin {args.margin}"
    print(
        f"\n{args.images} images x {args.seeds * (args.seeds - 1) // 2} seed pairs, {len(METHODS)} methods, {size}, {draws}"
    )
    for metric, by_kind in results.items():
        for kind, by_n in by_kind.items():
            print(f"{metric}, {kind} ranking: Spearman between seeds")
            stable = []
            for n in counts:
                r = np.array(by_n[n])
                ok = (r >= 0.9).mean()
                extra = f"  rank levels: {np.mean(levels[metric][n]):.1f}" if kind == "tie-aware" else ""
                print(f"  n={n:4d}: min {r.min():.3f}  median {np.median(r):.3f}  share >= 0.9: {ok:.2f}{extra}")
                stable.append(ok == 1.0)
            # the smallest count from which every larger count tested is stable too
            chosen = next((n for j, n in enumerate(counts) if all(stable[j:])), None)
            print(
                f"  smallest count with Spearman >= 0.9 for every image and seed pair (and beyond): {chosen or 'none'}"
            )


if __name__ == "__main__":
    main()
