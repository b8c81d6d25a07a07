"""meta_evaluate end to end: on a toy model whose depth reads one box, the true map and saliency (which finds the
box) against the random map; every faithfulness metric must be resilient to minor noise and react to shuffled and
inverted maps. On the real model: the folder, the resume and the one-line errors."""

import csv
import json

import pytest
import torch

from depthscope.assess import AssessConfig
from depthscope.data.datasets import DepthDataset, Sample
from depthscope.errors import InputError
from depthscope.explain.attribution import METHODS, Attribution, register_method
from depthscope.meta import MetaConfig, meta_evaluate
from tests.assess.toys import H, W, box_image, box_model, box_truth


class ToyImages(DepthDataset):
    name = "pairs"

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return Sample(f"toy_{i}", box_image(10 + i)[0], None)


@pytest.fixture
def truth_method():
    @register_method("toy_truth", needs_grad=False)
    def toy_truth(fmodel, x):
        """The toy's true relevance: its box."""
        return Attribution("toy_truth", box_truth()[None, None].expand(fmodel.weights.shape[0], 1, H, W).clone())

    yield "toy_truth"
    METHODS.unregister("toy_truth")


FAITHFULNESS = {
    "curves": {"patch": 4, "replacement": "black"},
    "road": {"patch": 4},
    "insertion_deletion": {"patch": 4, "replacement": "black"},
    "monotonicity_correlation": {"patch": 4, "n_steps": 24, "n_samples": 1, "replacement": "black"},
    "faithfulness_correlation": {"patch": 4, "n_perturbations": 48, "adaptive": False},
}


def test_faithfulness_metrics_are_resilient_and_reactive_on_a_model_with_known_relevance(tmp_path, truth_method):
    assess = AssessConfig(methods=(truth_method, "saliency", "random"), metrics=tuple(FAITHFULNESS),
                          metric_options=FAITHFULNESS, perturb_region="full")  # fmt: skip
    cfg = MetaConfig(assess, tests=("input_noise", "weight_noise", "map_shuffled", "map_inverted"), repeats=1)
    res = meta_evaluate(box_model(), ToyImages(6), cfg, tmp_path / "meta")
    rows = {r["metric"]: r for r in res.rows}
    assert set(rows) == set(FAITHFULNESS)
    for name, r in rows.items():
        # minor noise keeps the order truth/saliency > random on every image; shuffled or inverted maps score worse
        assert r["iec_nr"] >= 0.9 and r["iec_ar"] >= 0.9, (name, r)
        assert r["iac_ar"] >= 0.9, (name, r)  # 6 pairs: all scores fall, exact p = 2/64
        assert r["krippendorff_alpha"] > 0.5, (name, r)  # images agree on the ranking
    scores = list(csv.DictReader(open(tmp_path / "meta" / "scores.csv")))
    assert len(scores) == 6 * (1 + 4) * 3  # images x (unperturbed + 4 tests) x methods
    assert {float(s["depth_change"]) <= 0.05 for s in scores if s["test"] in ("input_noise", "weight_noise")} == {True}


def test_resume_and_settings_on_the_real_model(tmp_path, nyu):
    cfg = MetaConfig(AssessConfig(methods=("saliency", "random"), metrics=("sparseness", "complexity")), repeats=1)
    first = meta_evaluate("meter-xxs-nyu", nyu, cfg, tmp_path / "m", limit=1)
    rows = (tmp_path / "m" / "scores.csv").read_text()
    again = meta_evaluate("meter-xxs-nyu", nyu, cfg, tmp_path / "m", limit=1)
    assert (tmp_path / "m" / "scores.csv").read_text() == rows  # nothing recomputed
    assert json.dumps(first.rows) == json.dumps(again.rows)  # (NaN where one image leaves nothing to agree on)
    assert {r["metric"] for r in first.rows} == {"sparseness", "complexity"}
    plan = first.plan
    assert {m["metric"] for m in plan["metrics"]} >= {"sparseness", "complexity"} and plan["runs_per_image"] == 6
    other = MetaConfig(cfg.assess, repeats=2)
    with pytest.raises(InputError, match="other settings"):
        meta_evaluate("meter-xxs-nyu", nyu, other, tmp_path / "m", limit=1)


def test_bad_settings_are_one_line():
    with pytest.raises(InputError, match="at least one minor and one disruptive"):
        MetaConfig(tests=("input_noise",))
    with pytest.raises(InputError, match="has no direction"):
        MetaConfig(AssessConfig(methods=("saliency", "random"), metrics=("matched_control",)))
    with pytest.raises(InputError, match="at least two methods"):
        MetaConfig(AssessConfig(methods=("random",), metrics=("curves",)))
    with pytest.raises(InputError, match="--repeats"):
        MetaConfig(repeats=0)
    with pytest.raises(Exception, match="unknown meta-evaluation test 'nope'"):
        MetaConfig(tests=("nope", "input_noise"))
    assert torch.is_tensor(box_image())


def test_cli_and_the_report_section(tmp_path, nyu_dir, nyu, capsys):
    from depthscope.cli import main
    from depthscope.models import load_model
    from depthscope.report.job import trust_section

    out = tmp_path / "meta"
    rc = main(["meta-evaluate", "--data", str(nyu_dir), "--limit", "1", "--methods", "saliency,random",
               "--metrics", "sparseness,complexity", "--repeats", "1", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0 and "Cronbach's alpha of the 2 metrics" in printed and "sparseness" in printed
    rows = list(csv.DictReader(open(out / "meta.csv")))
    assert [r["metric"] for r in rows] == ["sparseness", "complexity"]
    section = trust_section(load_model("meter-xxs-nyu"), nyu, out, tmp_path, 1, False, ["depthscope"], 0.0)
    assert section.title == "Which scores to trust for this model" and "sparseness" in section.body
    with pytest.raises(InputError, match="no meta-evaluation here"):
        trust_section(load_model("meter-xxs-nyu"), nyu, tmp_path / "none", tmp_path, 1, False, ["depthscope"], 0.0)
