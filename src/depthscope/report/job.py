"""The main job in one call: accuracy on a dataset with a per-image gallery, an explanation figure of its first
image, the assessment table and curves, gathered in one self-contained HTML page (``depthscope report``) that says
how it was made."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from depthscope.assess import AssessConfig, assess, display_summary
from depthscope.data.datasets import DepthDataset, check_limit, open_dataset
from depthscope.errors import InputError
from depthscope.explain import explain, save_explanation
from depthscope.metrics import METRIC_NAMES
from depthscope.metrics.evaluate import evaluate
from depthscope.models import DepthModel, load_model
from depthscope.output.figures import gallery_figure
from depthscope.output.tables import fmt, format_table
from depthscope.probe import display_probes, probe
from depthscope.report.html import (
    Section,
    accuracy_table,
    depth_groups_table,
    esc,
    figure,
    plain_table,
    provenance,
    random_weights_banner,
    score_table,
    write_page,
)
from depthscope.robustness import robustness


def report(
    model: DepthModel | str,
    data: DepthDataset | str | os.PathLike,
    out: str | os.PathLike = "runs/demo",
    config: AssessConfig | None = None,
    limit: int = 3,
    device: str = "cpu",
    progress: bool = False,
    echo: bool = False,
    gallery: int = 3,
    force_new: bool = False,
    meta: bool | str | os.PathLike = False,
) -> Path:
    """Evaluate ``model`` on ``data``, explain its first image and assess ``config.methods`` on ``limit`` images.

    Args:
        model: a :class:`DepthModel` or a model name.
        data: a dataset or a path :func:`depthscope.open_dataset` reads.
        out: output directory: ``report.html``, ``evaluate/``, ``gallery.png``, ``explain.png``, ``probe/`` (the
            shortcut probes of the ``limit`` images) and ``assess/``.
        config: the assessment's settings (default :class:`AssessConfig`); its methods are also the figure's.
        limit: images to assess (the evaluation uses all of them).
        device: where to load ``model`` when it is a name.
        progress: progress bars.
        echo: print each section's table as it is finished.
        gallery: images shown in the gallery (image, prediction, ground truth, absolute error).
        force_new: the assessment folder ``out/assess`` holds an earlier run: move it aside and start afresh
            (without it, an assessment of other data there is one clear error; one of the same data resumes).
        meta: add the section "Which scores to trust for this model": True runs ``meta_evaluate`` with its defaults
            on the ``limit`` images into ``out/meta`` (about 3.5 min per NYU image on 2 cores); a folder reads a
            finished ``depthscope meta-evaluate`` run's ``meta.csv``.

    Returns:
        The path of ``report.html``.

    Example:
        >>> import tempfile, depthscope as ds
        >>> from depthscope.data import find_data
        >>> cfg = ds.AssessConfig(methods=("saliency",), metrics=("curves",))
        >>> ds.report("meter-xxs-nyu", find_data(), tempfile.mkdtemp(), cfg, limit=1).name
        'report.html'
    """
    out = Path(out)
    if not isinstance(gallery, int) or gallery < 0:
        raise InputError(f"--gallery must be an integer >= 0 (images shown), got {gallery}")
    check_limit(limit)
    config = config or AssessConfig()
    model = load_model(model, device=device) if isinstance(model, str) else model
    data_arg = None if isinstance(data, DepthDataset) else str(data)
    data = data if isinstance(data, DepthDataset) else open_dataset(data, model.info.eval.dataset)
    dev = model.device
    base = ["depthscope"]
    common = ["--model", model.name, "--device", str(dev)]
    data_opts = ["--data", data_arg or str(getattr(data, "root", "DATA")), "--dataset", data.name]
    sections = []

    t0 = time.perf_counter()
    first = data[0]  # its camera decides the metric groups; it is also the image explained below
    groups = "standard,boundary,dbe,binned" + (",normals,pointcloud" if first.intrinsics is not None else "")
    result = evaluate(model, data, out=out / "evaluate", progress=progress, metrics=groups)
    weights = model.weights_record
    metrics_rows = [{"model": result.model, "weights": weights, "n": len(result.per_image), **result.metrics}]
    if echo:
        print(format_table(metrics_rows, ["model", "n", *METRIC_NAMES]))
    shown = []
    for i in range(min(gallery, len(data))):
        s = data[i]
        with torch.no_grad():
            shown.append((s.name, s.image, model(s.image[None].to(dev))[0, 0].cpu(), s.depth))
    if shown:
        gallery_figure(shown, out / "gallery.png")
    crop = result.settings["crop"]
    sections.append(Section(
        "Accuracy (depth in metres)",
        accuracy_table(metrics_rows) + depth_groups_table(result.metrics, result.settings["metrics"]) + (figure(out / "gallery.png", f"first {len(shown)} images: one depth scale "
                                               "for predictions and ground truth, one for the absolute error")
                                        if shown else ""),
        [*base, "evaluate", *common, *data_opts, "--metrics", groups, "--out", str(out / "evaluate")],
        time.perf_counter() - t0,
        [f"Mean over {len(result.per_image)} images of each image's metric; crop {crop}, depths capped to "
         f"{result.settings['min_depth']:g}..{result.settings['max_depth']:g} m."
         + (f" {result.settings['n_without_gt']} images had no ground truth." if result.settings["n_without_gt"]
            else "")],
    ))  # fmt: skip

    t0 = time.perf_counter()
    options = {k: dict(v) for k, v in config.method_options.items() if k in config.methods}  # the assessment's
    attrs = explain(model, first.image, config.methods, "mean", options)
    files = save_explanation(out, model, first.image, attrs, "mean", first.depth,
                             title=f"{model.name} · {first.name} · target: mean depth",
                             source=data.source(0) or f"{getattr(data, 'root', data.name)}: {first.name}")  # fmt: skip
    opt_args = [a for m, o in options.items() for k, v in o.items() for a in ("--option", f"{m}.{k}={v}")]
    image = data.source(0)
    sections.append(Section(
        "Explanations",
        figure(files["explain.png"], f"{first.name}: attribution of the mean predicted depth"),
        [*base, "explain", *common, *(["--image", image] if image else []), "--methods", ",".join(config.methods),
         "--target", "mean", *opt_args, "--out", str(out)],
        time.perf_counter() - t0,
        ["Every method's |attribution| is shown as its share of the total (1 = the share of a uniform map), on one "
         "colour scale clipped at the 99th percentile of all maps, so panels are comparable across methods; "
         "methods whose maps have a sign are shown signed on one diverging scale below."],
    ))  # fmt: skip

    t0 = time.perf_counter()
    probed = probe(model, data, limit=limit, out=out / "probe")
    sections.append(Section(
        f"What the model reads: shortcut probes ({limit} images)",
        "".join(f"<p class='warn'>⚠ {esc(w)}</p>" for w in probed.warnings) + plain_table(display_probes(probed.summary)),
        [*base, "probe", *common, *data_opts, "--limit", str(limit), "--out", str(out / "probe")],
        time.perf_counter() - t0,
        ["Each probe edits every image and measures the relative change of the mean predicted depth and the RMSE "
         "between the depth maps (metres). Controls move the content with the frame kept and should barely move "
         "the depth; a frame probe that moves it means perturbation scores of border pixels measure the frame."],
    ))  # fmt: skip

    t0 = time.perf_counter()
    summary = assess([model], data, config, out / "assess", limit=limit, device=device, progress=progress,
                     force_new=force_new)  # fmt: skip
    if echo:
        print(format_table(display_summary(summary)))
    body = score_table(summary, config.descriptions())
    if "curves" in config.metrics:
        body += figure(out / "assess" / "curves.png", "perturbation curves: mean over images, ±1 std bands")
    sections.append(Section(
        f"Assessment of the attribution maps ({limit} images)",
        body,
        [*base, "assess", *common, *data_opts, "--limit", str(limit), *config.cli_args(), "--out", str(out / "assess")],
        time.perf_counter() - t0,
        [f"Protocol {config.protocol!r}, perturbations inside the region {config.perturb_region!r} (crop: the model's "
         f"evaluation crop); image i uses seed {config.seed} + i."],
    ))  # fmt: skip
    t0 = time.perf_counter()
    rob = robustness(model, data, methods=config.methods[:1], out=out / "robustness", limit=limit, progress=progress,
                     force_new=force_new)  # fmt: skip
    sections.append(Section(
        f"Robustness under corruptions ({limit} images)",
        f"<p>mCE {rob.mce:.1%} (the model is its own reference), mRR {rob.mrr:.1%}.</p>" + plain_table(
            [{k: (fmt(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rob.rows])
        + figure(out / "robustness" / "corruptions.png", "image 0 under each corruption at its highest severity"),
        [*base, "robustness", *common, *data_opts, "--limit", str(limit), "--methods", config.methods[0],
         "--out", str(out / "robustness")],
        time.perf_counter() - t0,
        ["ImageNet-C corruptions at severities 1-5 (seeded); DEE = (AbsRel - delta1 + 1) / 2; the map drift is the "
         "Spearman and top-10 % IoU of the first method's map on the clean against the corrupted image."],
    ))  # fmt: skip
    if meta:
        t0 = time.perf_counter()
        sections.append(trust_section(model, data, meta, out, limit, progress, [*base, "meta-evaluate", *common,
                                                                                   *data_opts], t0))  # fmt: skip
    banners = random_weights_banner(model.name, weights)
    settings = {"model": model.name, "weights": weights, "dataset": data.name, "evaluate": result.settings,
                "explain": {"target": "mean", "methods": list(config.methods), "options": options},
                "assess": {**config.to_dict(), "limit": limit}}  # fmt: skip
    info = provenance(str(dev), {"assess": f"{config.seed} + image index", "explain": 0})
    return write_page(out / "report.html", f"depthscope report: {model.name} on {data.name}", sections, info,
                      settings, banners)  # fmt: skip


def trust_section(
    model: DepthModel,
    data: DepthDataset,
    meta: bool | str | os.PathLike,
    out: Path,
    limit: int,
    progress: bool,
    command: list[str],
    t0: float,
) -> Section:
    """The report's "Which scores to trust" section: a meta-evaluation run now (``meta`` True) or read from a
    finished run's folder."""
    import csv

    from depthscope.meta import MetaConfig, display_meta, meta_evaluate

    if meta is True:
        rows = meta_evaluate(model, data, MetaConfig(), out / "meta", limit=limit, progress=progress).rows
        cmd = [*command, "--limit", str(limit), "--out", str(out / "meta")]
    else:
        path = Path(meta) / "meta.csv"
        if not path.is_file():
            raise InputError(f"{path}: no meta-evaluation here (run depthscope meta-evaluate --out {meta} first)")
        rows = [{k: (float(v) if k not in ("metric", "score", "category", "better") else v) for k, v in r.items()}
                for r in csv.DictReader(path.open())]  # fmt: skip
        cmd = [*command, "--out", str(meta)]
    trusted = [r["metric"] for r in rows if r["mc_score"] >= 0.7]
    lead = f"<p>Metrics with an MC score of 0.7 or more on this model: {esc(', '.join(trusted) or 'none')}.</p>"
    return Section(
        "Which scores to trust for this model",
        lead + plain_table(display_meta(rows)),
        cmd,
        time.perf_counter() - t0,
        [
            "Per metric: noise resilience (NR: minor noise on the image or the weights, the mean depth moving less "
            "than 5 %) and adversarial reactivity (AR: maps of a half-randomised model, shuffled or inverted maps) as "
            "MetaQuantus' intra-consistency (IAC, Wilcoxon p-values) and inter-consistency (IEC: method order kept "
            "under NR, scores worse under AR), their mean (MC), Krippendorff's alpha of the method ranking across "
            "images and its mean Spearman agreement with the other metrics."
        ],
    )
