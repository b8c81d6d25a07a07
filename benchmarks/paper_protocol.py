"""Does the paper's finding hold, and under which protocol? A study of the perturbation assessment on METER.

Run: python benchmarks/paper_protocol.py [--nyu-images 10] [--out runs/paper_protocol] [--draws 128] [--region crop]

Every perturbation (curves, Infidelity's noise, the Faithfulness Correlation's sets) stays inside ``--region``:
``crop`` (default, as ``assess``: the model's evaluation crop, Eigen on NYU, which leaves out the white frame
METER-XXS-NYU reads its global depth from; see ``depthscope probe``) or ``full`` (the whole image, as before
2026-12-06, when the frame dominated the least relevant pixels of saliency).

For meter-xxs-nyu on the NYU sample and meter-xxs-kitti on the KITTI sample, and for 7 methods (saliency,
adaptive IG, Attention Rollout, input x gradient, SmoothGrad, Grad-CAM, random), every map is computed once per
image; then for every protocol of the grid

    replacement (mean, black, blur, noise, inpaint) x granularity (pixel, 8 px, 16 px patches)

one MoRF/LeRF/random curve per map runs at fractions 0, 10, ..., 100 %; the "to 50 %" reading is its prefix.
From each curve: af_perturbation on RMSE and on AbsRel to the original prediction, and the MoRF - LeRF gap of the
change of RMSE against ground truth (metres; higher = the map's top pixels matter more for accuracy). Per protocol
and reading it prints each method's mean over images with a 95 % bootstrap CI, the ranking, and paired Wilcoxon
signed-rank tests of saliency against every other method (NYU: 10 images). It also measures how much of the depth
change is explained by colour alone: R^2 of the RMSE of each perturbed prediction against the mean colour shift
the perturbation makes (over all orders, fractions, maps), i.e. how far the protocol leaves the image
distribution instead of testing which pixels matter; and likewise by fragmentation alone (``frag_r2``: R^2 against
the boundary length / area of the perturbed set, which is high for i.i.d. random orders and low for whole
patches). Infidelity (control variate, ``--draws``) and the
Faithfulness Correlation on the same maps, af_depth_correlation, and the cascading-randomisation sanity check on NYU
image 0 are reported beside, and a figure like the paper's (image 0: MoRF/LeRF-perturbed images and their depth)
is written for the recommended protocol.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from _common import SHARED  # noqa: F401  (sets DEPTHSCOPE_* for the lookup)
from scipy.stats import spearmanr, wilcoxon

from depthscope.assess import af_depth_correlation, af_perturbation, perturbation_curves
from depthscope.assess.fidelity import faithfulness_score, infidelity_score, noise_draws, subset_draws
from depthscope.assess.perturbation import model_region, order_ranks, replacement_fill
from depthscope.data import find_data, open_dataset
from depthscope.explain import explain, target_model
from depthscope.explain.sanity import cascading_randomization
from depthscope.models import load_model
from depthscope.output.files import write_json
from depthscope.output.tables import format_table

METHODS = [
    "saliency",
    "integrated_gradients",
    "attention_rollout",
    "input_x_gradient",
    "smoothgrad",
    "gradcam",
    "random",
]
OPTIONS: dict = {}  # every method with its defaults: IG converges to a 2 % completeness error
REPLACEMENTS = ["mean", "black", "blur", "noise", "inpaint"]
PATCHES = [1, 8, 16]
FRACTIONS = [round(0.1 * i, 1) for i in range(11)]  # to 100 %; the first 6 are the "to 50 %" reading
READINGS = ["af_rmse", "af_abs_rel", "gt_gap"]


def curve_scores(c, upto: int) -> dict[str, float]:
    """The three readings of one curve over its first ``upto`` fractions."""
    out = {
        "af_rmse": af_perturbation(c.rmse["morf"][:upto], c.rmse["lerf"][:upto]),
        "af_abs_rel": af_perturbation(c.abs_rel["morf"][:upto], c.abs_rel["lerf"][:upto]),
    }
    if c.gt_rmse_change:
        m, lf = np.array(c.gt_rmse_change["morf"][1:upto]), np.array(c.gt_rmse_change["lerf"][1:upto])
        out["gt_gap"] = float((m - lf).mean())
    return out


def colour_shifts(x, score, replacement, patch, seed, region=None) -> dict[str, list[float]]:
    """Per order and fraction > 0, the mean colour change the perturbation makes over the whole image (the norm of
    the mean of ``fill - x`` over all pixels, in [0, 1] units): what a model that only saw global colour would see."""
    ranks = order_ranks(score, patch, seed, region)
    n = score.numel() if region is None else int(region.sum())
    out = {}
    rep = replacement_fill(x, replacement, seed)  # the curves' own fill
    for order, r in ranks.items():
        masks = torch.stack([(r < f * n).float()[None] for f in FRACTIONS[1:]])  # (K, 1, H, W)
        fill = rep(masks) if callable(rep) else rep
        shift = ((fill - x) * masks).mean(dim=(-2, -1))  # (K, 3)
        out[order] = shift.norm(dim=1).tolist()
    return out


def bootstrap_ci(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    if len(values) < 2:
        return float("nan"), float("nan")
    means = rng.choice(values, (n, len(values))).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nyu-images", type=int, default=10)
    ap.add_argument("--kitti-images", type=int, default=2)
    ap.add_argument("--sanity", action=argparse.BooleanOptionalAction, default=True, help="cascading randomisation")
    ap.add_argument("--draws", type=int, default=128, help="Infidelity / Faithfulness Correlation draws")
    ap.add_argument("--out", default="runs/paper_protocol")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--figure", metavar="REPLACEMENT/PATCH", help="only draw the paper's figure for this protocol")
    ap.add_argument("--region", choices=["crop", "full"], default="crop", help="where perturbations may fall")
    ap.add_argument("--replacements", default=",".join(REPLACEMENTS))
    ap.add_argument("--patches", default=",".join(map(str, PATCHES)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.figure:
        figure(args.figure, out, args.region)
        return
    replacements, patches = args.replacements.split(","), [int(p) for p in args.patches.split(",")]
    t_start = time.perf_counter()
    sets = [
        ("meter-xxs-nyu", open_dataset(find_data("nyu_sample"), "nyu"), args.nyu_images),
        ("meter-xxs-kitti", open_dataset(find_data("kitti_sample"), "kitti"), args.kitti_images),
    ]
    # scores[model][protocol][upto][reading][method] -> list over images
    scores: dict = {}
    ood: dict = {}
    extra: dict = {}
    for model_name, ds, n_images in sets:
        model = load_model(model_name)
        for i in range(min(n_images, len(ds))):
            t0 = time.perf_counter()
            s = ds[i]
            x, gt = s.image[None], s.depth
            attrs = explain(model, x, METHODS, "mean", OPTIONS, seed=i)
            with torch.no_grad():
                depth = model(x)[0, 0]
            fm = target_model(model, x, "mean")
            region = model_region(args.region, model, *x.shape[-2:])
            nd = noise_draws(fm, x, args.draws, seed=i, region=region)
            sd = subset_draws(fm, x, args.draws, seed=i, region=region)
            for m in METHODS:
                e = extra.setdefault(model_name, {}).setdefault(m, {"infidelity": [], "fe": [], "af_depth": []})
                e["infidelity"].append(infidelity_score(nd, attrs[m].raw).value)
                e["fe"].append(faithfulness_score(sd, attrs[m].signed).value)
                e["af_depth"].append(af_depth_correlation(attrs[m].magnitude[0], depth))
            for rep, patch in itertools.product(replacements, patches):
                proto = f"{rep}/{patch}px"
                for m in METHODS:
                    score = attrs[m].magnitude[0]
                    c = perturbation_curves(model, x, score, FRACTIONS, rep, patch, i, gt, region=region)
                    for upto, label in ((6, "50%"), (11, "100%")):
                        for reading, v in curve_scores(c, upto).items():
                            scores.setdefault(model_name, {}).setdefault(proto, {}).setdefault(label, {}).setdefault(
                                reading, {}
                            ).setdefault(m, []).append(v)
                    shifts = colour_shifts(x, score, rep, patch, i, region)
                    o = ood.setdefault(model_name, {}).setdefault(proto, {"shift": [], "rmse": [], "frag": []})
                    for order in ("morf", "lerf", "random"):
                        o["shift"] += shifts[order]
                        o["rmse"] += c.rmse[order][1:]
                        o["frag"] += c.fragmentation[order][1:]
            print(f"{model_name} image {i} ({s.name}): {time.perf_counter() - t0:.0f} s", flush=True)

    rng = np.random.default_rng(0)
    report: dict = {"scores": scores, "extra": extra, "ood_r2": {}, "frag_r2": {}, "tables": {}, "region": args.region}
    for model_name, protos in scores.items():
        rows = []
        for proto, by_upto in protos.items():
            sh, d = np.array(ood[model_name][proto]["shift"]), np.array(ood[model_name][proto]["rmse"])
            r2 = float(np.corrcoef(sh, d)[0, 1] ** 2) if sh.std() > 0 and d.std() > 0 else float("nan")
            report["ood_r2"].setdefault(model_name, {})[proto] = r2
            fr = np.array(ood[model_name][proto]["frag"])  # how fragmented each perturbed set is (boundary / area)
            r2_frag = float(np.corrcoef(fr, d)[0, 1] ** 2) if fr.std() > 0 and d.std() > 0 else float("nan")
            report["frag_r2"].setdefault(model_name, {})[proto] = r2_frag
            for label, by_reading in by_upto.items():
                for reading, by_method in by_reading.items():
                    means = {m: float(np.mean(v)) for m, v in by_method.items()}
                    order = sorted(means, key=means.get, reverse=True)
                    sal = np.array(by_method["saliency"])
                    tests = {}
                    for m in METHODS:
                        if m != "saliency" and len(sal) >= 5:
                            diff = sal - np.array(by_method[m])
                            tests[m] = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
                    ci = {m: bootstrap_ci(np.array(v), rng) for m, v in by_method.items()}
                    std = {m: float(np.std(v)) for m, v in by_method.items()}
                    rows.append(
                        {
                            "protocol": proto,
                            "to": label,
                            "reading": reading,
                            "saliency_rank": order.index("saliency") + 1,
                            "ranking": " > ".join(order),
                            **{m: f"{means[m]:+.3f} [{ci[m][0]:+.3f},{ci[m][1]:+.3f}]" for m in METHODS},
                            "saliency_vs_p": " ".join(f"{k[:4]}={v:.3f}" for k, v in tests.items()),
                            "random_std": std["random"],  # the control's spread over images
                            "ood_r2": r2,
                            "frag_r2": r2_frag,
                        }
                    )
        report["tables"][model_name] = rows
        print(f"\n== {model_name}: mean over images [95 % bootstrap CI]; saliency's rank; Wilcoxon p (saliency vs)")
        print(format_table(rows, ["protocol", "to", "reading", "saliency_rank", "ranking", "ood_r2", "frag_r2",
                                  "random_std"], digits=3))  # fmt: skip
        first = sorted({r["saliency_rank"] for r in rows})
        print(f"saliency ranks seen: {first}; protocols where saliency ranks first:")
        for r in rows:
            if r["saliency_rank"] == 1:
                print(f"  {r['protocol']} to {r['to']} {r['reading']}: {r['saliency']} p: {r['saliency_vs_p']}")
    # agreement of the AF readings with Infidelity and the Faithfulness Correlation (method rankings, NYU)
    e = extra["meter-xxs-nyu"]
    inf_rank = {m: -np.mean(v["infidelity"]) for m, v in e.items()}  # lower infidelity is better
    fe_rank = {m: np.mean(v["fe"]) for m, v in e.items()}
    agree = []
    for r in report["tables"]["meter-xxs-nyu"]:
        means = {m: float(r[m].split()[0]) for m in METHODS}
        agree.append(
            {
                "protocol": r["protocol"], "to": r["to"], "reading": r["reading"],
                "spearman_vs_infidelity": spearmanr([means[m] for m in METHODS], [inf_rank[m] for m in METHODS])[0],
                "spearman_vs_fe": spearmanr([means[m] for m in METHODS], [fe_rank[m] for m in METHODS])[0],
            }
        )  # fmt: skip
    report["agreement"] = agree
    print("\n== NYU: Spearman of the method ranking by each reading with Infidelity's and the FE's")
    print(format_table([a for a in agree if a["reading"] == "af_rmse"], digits=2))
    print("\n== NYU: Infidelity (m^2), Faithfulness Correlation, af_depth_correlation per method (mean over images)")
    print(
        format_table(
            [
                {"method": m, **{k: float(np.mean(v[k])) for k in ("infidelity", "fe", "af_depth")}}
                for m, v in e.items()
            ],
            digits=4,
        )
    )
    # sanity: cascading randomisation on NYU image 0, the map's Spearman to the original once everything is random
    if not args.sanity:
        write_json(out / "paper_protocol.json", report)
        return
    model, ds = load_model("meter-xxs-nyu"), sets[0][1]
    x = ds[0].image[None]
    sanity = {}
    for m in METHODS:
        rows = cascading_randomization(model, x, m, "mean", OPTIONS.get(m))
        by = {r["block"]: r["spearman"] for r in rows}
        sanity[m] = {"after_decoder": by.get("decoder.conv2d_in", float("nan")), "all_random": rows[-1]["spearman"]}
    report["sanity"] = sanity
    print("\n== sanity (NYU image 0): Spearman of the map with the original, decoder random / whole network random")
    print(format_table([{"method": m, **v} for m, v in sanity.items()], digits=3))
    report["seconds"] = time.perf_counter() - t_start
    write_json(out / "paper_protocol.json", report)
    print(f"\n{report['seconds']:.0f} s; wrote {out / 'paper_protocol.json'}")


def figure(protocol: str, out: Path, region_spec: str = "crop") -> None:
    """The paper's figure on NYU image 0: every method's MoRF and LeRF perturbations at 10, 30, 50 % and their
    depth, under ``protocol`` (e.g. ``mean/1`` or ``inpaint/16``)."""
    from depthscope.assess import perturbed_views
    from depthscope.output.figures import perturbation_figure

    rep, patch = protocol.split("/")
    model, ds = load_model("meter-xxs-nyu"), open_dataset(find_data("nyu_sample"), "nyu")
    x = ds[0].image[None]
    attrs = explain(model, x, METHODS, "mean", OPTIONS, seed=0)
    fractions = (0.1, 0.3, 0.5)
    region = model_region(region_spec, model, *x.shape[-2:])
    views = {m: perturbed_views(model, x, attrs[m].magnitude[0], fractions, rep, int(patch), region=region)
             for m in METHODS}  # fmt: skip
    with torch.no_grad():
        depth = model(x)[0, 0]
    name = f"perturbations_{rep}_{patch}px_{region_spec}.png"
    perturbation_figure(x[0], depth, views, fractions, out / name, f"meter-xxs-nyu, NYU image 0, {rep} / {patch} px")
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
