"""How many random draws Infidelity and the Faithfulness Correlation need: the smallest count whose ranking of the
attribution methods is the same across seeds (issue 4: Spearman >= 0.9, per image, over the NYU sample).

Run: python benchmarks/perturbation_count.py [--images 10] [--seeds 3] [--counts 8 ... 256] [--size H W]
     [--infidelity-sigma S] [--[no-]symmetric-infidelity] [--[no-]infidelity-control-variate] [--margin M]
     [--show-misses] [--adaptive [--budget 256 ...] [--round 16 ...] [--tolerance 0.02 ...]]

``--adaptive``: instead of fixed counts, each image x seed draws with the library's adaptive estimator
(``sequential_draws``: rounds until every pair of the 7 maps is resolved, at most ``--budget`` draws), and the
same Spearman criterion is applied to the scores at the stop; it prints the mean draws and forwards per image.
(Infidelity settings default to the library's: std 0.01, symmetric drops, gradient control variate.)

For each image the maps of every method are computed once; for each seed the largest number of draws is run once
(the draws do not depend on the method) and smaller counts use its first ``n`` draws. Two rankings are compared:

- plain: methods ordered by their score;
- tie-aware: methods whose scores lie within ``--margin`` of each other (a chain of gaps <= margin) share their
  average rank. The scores are scale-free for this: infidelity divided by the zero map's (the fraction of the
  drops' energy the map leaves unexplained, 0..1), the Faithfulness Correlation a correlation (-1..1).

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

from depthscope.assess.fidelity import (
    DEFAULT_ROUND,
    DEFAULT_TOLERANCE,
    Draws,
    NoiseStream,
    SubsetStream,
    control_moments,
    faithfulness_influence,
    faithfulness_score,
    infidelity_influence,
    infidelity_terms,
    noise_dots,
    noise_draws,
    patch_set_draws,
    pearson,
    sequential_draws,
    subset_draws,
)
from depthscope.assess.metrics import InfidelityConfig
from depthscope.config import add_config_args, build_config, config_values
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


def infidelity_stat(maps: torch.Tensor, draws: Draws) -> Callable[[int], torch.Tensor]:
    """``n -> (M,)`` normalised infidelity of every map ``(M, C, H, W)`` on the first ``n`` draws (the library's
    estimator), divided by that of the zero map (which explains nothing): the fraction of the drops' energy each
    map leaves unexplained, 0..1 up to sampling noise; lower is better, in the library's order."""
    dots, moments = noise_dots(draws, maps), control_moments(draws, maps)
    zero = torch.zeros_like(maps[:1])
    zero_dots, zero_moments = noise_dots(draws, zero), control_moments(draws, zero)

    def stat(n: int) -> torch.Tensor:
        d = draws[:n]
        value, _ = infidelity_terms(dots[:, :n], d.drop, d.linear, moments)
        nothing, _ = infidelity_terms(zero_dots[:, :n], d.drop, d.linear, zero_moments)
        return value / nothing.clamp_min(1e-30)

    return stat


def faithfulness_stat(sums: torch.Tensor, drop: torch.Tensor) -> Callable[[int], torch.Tensor]:
    """``n -> (M,)`` minus the Faithfulness Correlation on the first ``n`` draws (so lower is better, like
    infidelity)."""

    def stat(n: int) -> torch.Tensor:
        return -torch.tensor([pearson(s[:n], drop[:n]) for s in sums])

    return stat


def exhaustive_faithfulness(fm, x: torch.Tensor, signed: dict[str, torch.Tensor], patch: int) -> dict[str, float]:
    """The Faithfulness Correlation with no sampling at all: every ``patch``-sized square replaced by the image mean
    on its own (Alvarez-Melis & Jaakkola's one-feature-at-a-time reading), Pearson over all squares between each
    map's sum in the square and the drop. What the sampled estimate would converge to if single squares were drawn."""
    gh, gw = (-(-d // patch) for d in x.shape[-2:])
    draws = patch_set_draws(fm, x, torch.eye(gh * gw, dtype=torch.bool).view(-1, 1, gh, gw), patch)
    return {m: faithfulness_score(draws, a[None]).value for m, a in signed.items()}


def image_maps(model, ds, i: int, size: list[int] | None):
    """Image ``i`` (resized to ``size`` if given), every method's map of it and its whole-map mean target model."""
    x = ds[i].image[None]
    if size:
        x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", antialias=True)
    return x, explain(model, x, METHODS), target_model(model, x, "mean")


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
    ap.add_argument("--margin", type=float, default=0.02, help="tie margin of the scale-free scores (default 0.02)")
    add_config_args(ap, InfidelityConfig, prefix="infidelity_", skip=("n_perturbations",))  # as assess
    ap.add_argument(
        "--exhaustive-patch",
        type=int,
        default=0,
        help="also print, per image, the unsampled Faithfulness Correlation over every single square of this size",
    )
    ap.add_argument("--show-misses", action="store_true", help="print the scores of pairs below 0.9 at the top count")
    ap.add_argument("--adaptive", action="store_true", help="the library's adaptive estimator instead of fixed counts")
    ap.add_argument("--budget", type=int, nargs="+", default=[256], help="adaptive: most draws per image (default 256)")
    ap.add_argument("--round", type=int, nargs="+", default=[DEFAULT_ROUND], help="adaptive: draws per round")
    ap.add_argument("--tolerance", type=float, nargs="+", default=[DEFAULT_TOLERANCE],
                    help="adaptive: tolerances to compare (default: the library's)")  # fmt: skip
    args = ap.parse_args()
    if args.adaptive:
        return adaptive_main(args)
    inf = build_config(InfidelityConfig, config_values(args, InfidelityConfig, "infidelity_"), "infidelity")
    model, ds = setup()
    counts, n_max = sorted(args.counts), max(args.counts)
    # ranks[metric][kind][n] -> one rank vector per seed (per image); results/levels gather over images
    results = {m: {"plain": {}, "tie-aware": {}} for m in ("infidelity", "faithfulness")}
    levels: dict[str, dict[int, list[int]]] = {m: {} for m in results}
    for i in range(min(args.images, len(ds))):
        x, attrs, fm = image_maps(model, ds, i, args.size)
        if args.exhaustive_patch:
            fe = exhaustive_faithfulness(fm, x, {m: attrs[m].signed[0] for m in METHODS}, args.exhaustive_patch)
            print(f"image {i}: exhaustive Faithfulness Correlation, {args.exhaustive_patch}-px squares:")
            print("  " + "  ".join(f"{m} {v:.3f}" for m, v in fe.items()), flush=True)
        ranks: dict[str, dict[str, dict[int, list[np.ndarray]]]] = {m: {"plain": {}, "tie-aware": {}} for m in results}
        points: dict[str, dict[int, list[torch.Tensor]]] = {m: {} for m in results}
        for seed in range(args.seeds):
            nd = noise_draws(
                fm, x, n_max, inf.sigma, 1000 * seed + i, symmetric=inf.symmetric, control_variate=inf.control_variate
            )
            sd = subset_draws(fm, x, n_max, seed=1000 * seed + i)
            maps = torch.stack([attrs[m].raw[0].expand_as(x[0]) for m in METHODS])  # (M, 3, H, W)
            sums = torch.stack(
                [(sd.perturbation[:, 0] * attrs[m].signed[0]).sum(dim=(-2, -1)).double() for m in METHODS]
            )
            stats = {
                "infidelity": infidelity_stat(maps, nd),
                "faithfulness": faithfulness_stat(sums, sd.drop.double()),
            }
            for metric, stat in stats.items():
                for n in counts:
                    point = stat(n)
                    points[metric].setdefault(n, []).append(point)
                    tied = margin_ranks(point, args.margin)
                    ranks[metric]["plain"].setdefault(n, []).append(torch.argsort(torch.argsort(point)).numpy() + 1.0)
                    ranks[metric]["tie-aware"].setdefault(n, []).append(tied)
                    levels[metric].setdefault(n, []).append(len(np.unique(tied)))
        for metric, by_kind in ranks.items():
            for kind, by_n in by_kind.items():
                for n, per_seed in by_n.items():
                    for (s1, a), (s2, b) in itertools.combinations(enumerate(per_seed), 2):
                        rho = rank_agreement(a, b)
                        results[metric][kind].setdefault(n, []).append(rho)
                        if args.show_misses and kind == "tie-aware" and rho < 0.9 and n == counts[-1]:
                            fmt = lambda t: " ".join(f"{v:.3f}" for v in t.tolist())  # noqa: E731
                            print(f"  {metric} n={n} image {i} seeds {s1},{s2}: Spearman {rho:.3f}")
                            print(f"    scores {fmt(points[metric][n][s1])} | {fmt(points[metric][n][s2])}")
        print(f"image {i}: done", flush=True)

    size = "x".join(map(str, args.size)) if args.size else "480x640"
    draws = f"sigma {inf.sigma}" + (", symmetric" if inf.symmetric else "")
    draws += f", tie margin {args.margin}"
    draws += ", gradient control variate" if inf.control_variate else ", plain Monte Carlo"
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


def adaptive_main(args: argparse.Namespace) -> None:
    """The adaptive estimator against the same criterion: tie-aware Spearman >= 0.9 between seeds, per image.

    Each image x seed draws the largest ``--budget`` once; the library's stopping rule (``sequential_draws``) then
    runs at each budget x ``--round`` x ``--tolerance`` over that stream, round by round (a stream continued round
    by round is what an adaptive run draws), so the settings are compared on the same draws."""
    inf = build_config(InfidelityConfig, config_values(args, InfidelityConfig, "infidelity_"), "infidelity")
    model, ds = setup()
    settings = list(itertools.product(("infidelity", "faithfulness"), args.budget, args.round, args.tolerance))
    rho: dict[tuple, list[float]] = {k: [] for k in settings}
    used: dict[tuple, list[int]] = {k: [] for k in settings}
    for i in range(min(args.images, len(ds))):
        x, attrs, fm = image_maps(model, ds, i, args.size)
        maps = torch.stack([attrs[m].raw[0].expand_as(x[0]) for m in METHODS])  # (M, 3, H, W)
        signed = torch.stack([attrs[m].signed[0] for m in METHODS])  # (M, H, W)
        stats = {
            "infidelity": lambda d: infidelity_influence(d, maps),  # noqa: B023
            "faithfulness": lambda d: faithfulness_influence(d, signed),  # noqa: B023
        }
        ranks: dict[tuple, list[np.ndarray]] = {k: [] for k in settings}
        for seed in range(args.seeds):
            s = 1000 * seed + i
            noise = NoiseStream(fm, x, inf.sigma, s, symmetric=inf.symmetric, control_variate=inf.control_variate)
            most = max(args.budget)
            pools = {"infidelity": noise.draw(most), "faithfulness": SubsetStream(fm, x, seed=s).draw(most)}
            for metric, budget, round_size, t in settings:
                pool, taken = pools[metric], [0]

                def draw(k: int, pool: Draws = pool, taken: list[int] = taken) -> Draws:
                    taken[0] += k
                    return pool[taken[0] - k : taken[0]]

                draws = sequential_draws(draw, stats[metric], budget, round_size, t)
                if metric == "infidelity":
                    point = infidelity_stat(maps, draws)(len(draws))
                else:
                    point = -faithfulness_influence(draws, signed)[0]
                ranks[metric, budget, round_size, t].append(margin_ranks(point, args.margin))
                used[metric, budget, round_size, t].append(len(draws))
        for k, per_seed in ranks.items():
            rho[k].extend(rank_agreement(a, b) for a, b in itertools.combinations(per_seed, 2))
        print(f"image {i}: draws " + "; ".join(f"{k}: {used[k][-args.seeds :]}" for k in settings), flush=True)
    per_draw = 2 if inf.symmetric else 1
    print(f"\nadaptive: {args.images} images x {args.seeds * (args.seeds - 1) // 2} seed pairs, {len(METHODS)} methods, "
          f"tie margin {args.margin}; fixed: today's {args.budget[-1]} draws")  # fmt: skip
    for (metric, budget, round_size, t), r in rho.items():
        r, n = np.array(r), np.array(used[metric, budget, round_size, t])
        k = per_draw if metric == "infidelity" else 1
        forwards, fixed = n * k + 1, max(args.budget) * k + 1
        print(f"{metric}, budget {budget}, rounds of {round_size}, tolerance {t}: Spearman between seeds min "
              f"{r.min():.3f} median {np.median(r):.3f} share >= 0.9 {(r >= 0.9).mean():.2f}; draws per image mean "
              f"{n.mean():.1f} (min {n.min()}, max {n.max()}); forwards per image mean {forwards.mean():.1f} vs "
              f"{fixed} fixed ({fixed / forwards.mean():.1f}x fewer)")  # fmt: skip


if __name__ == "__main__":
    main()
