"""The faithfulness family: Faithfulness Correlation and Monotonicity Correlation equal Quantus 0.6 on the same
inputs (a one-channel image, so that Quantus' features, pixels of every channel, are our pixels); ROAD,
Insertion/Deletion and IROF by hand on a toy model whose depth reads one box only, where the true map must beat
the random map on every one of them."""

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from depthscope.assess import AssessConfig
from depthscope.assess.faithfulness import (
    InsertionDeletion,
    Irof,
    MonotonicityCorrelation,
    Road,
    insertion_deletion,
    irof_area,
    monotonicity_correlation,
    segment_curves,
    superpixels,
)
from depthscope.assess.fidelity import faithfulness_score, patch_set_draws
from depthscope.assess.metrics import FaithfulnessCorrelation
from depthscope.assess.perturbation import perturbation_curves
from depthscope.assess.registry import METRICS
from depthscope.assess.run import image_context
from depthscope.errors import InputError, UnknownNameError
from depthscope.explain import target_model
from depthscope.explain.attribution import Attribution
from tests.assess.toys import BOX, H, W, box_image, box_model, box_truth

quantus = pytest.importorskip("quantus")


class Gray(torch.nn.Module):
    """Our whole-map mean target of the toy, on a one-channel image (repeated to RGB): the one output Quantus
    expects, computed as ours is (a float32 weighted sum; ``.mean()`` rounds differently by ~1e-5 m)."""

    def __init__(self, model, x):
        super().__init__()
        self.target = target_model(model, x, "mean")

    def forward(self, g):
        return self.target(g.expand(-1, 3, -1, -1))


def _gray():
    g = box_image(1)[:, :1].clone()
    g[0, 0, 0, 0] = 0.0  # Quantus' "black" is the image minimum: make it 0, our black
    return g


def _black(arr, indices, **kwargs):
    """Quantus' black baseline without its side draw from NumPy's global random state (its baseline table draws a
    uniform array on every call), so that the subsets Quantus draws can be drawn again here."""
    out = arr.copy()
    out[np.arange(len(arr))[:, None], indices] = 0.0
    return out


def test_faithfulness_correlation_equals_quantus_on_its_own_subsets():
    model, g = box_model(), _gray()
    a = box_truth() + 0.3 * torch.rand(H, W, generator=torch.Generator().manual_seed(2))
    n_runs, size = 12, 100
    np.random.seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = quantus.FaithfulnessCorrelation(nr_runs=n_runs, subset_size=size, perturb_func=_black,
                                                 disable_warnings=True)(  # fmt: skip
            model=Gray(model, g.expand(1, 3, H, W)).eval(), x_batch=g.numpy(), y_batch=np.array([0]), a_batch=a[None, None].numpy(),
            device="cpu")[0]  # fmt: skip
    np.random.seed(7)  # the same subsets, drawn as Quantus draws them
    grid = torch.zeros(n_runs, 1, H * W, dtype=torch.bool)
    for k in range(n_runs):
        grid[k, 0, np.random.choice(H * W, size, replace=False)] = True
    x = g.expand(1, 3, H, W)
    draws = patch_set_draws(target_model(model, x, "mean"), x, grid.view(n_runs, 1, H, W), 1, torch.zeros_like(x), 4)
    ours = faithfulness_score(draws, a[None]).value
    # the drops (~0.02 m) are differences of two float32 targets of ~2.2 m, each a sum of 1,536 weighted depths
    # whose rounding depends on the batch (Quantus runs one input at a time, we run 4): ~1e-5 m apart, ~1e-4 here
    assert ours == pytest.approx(theirs, abs=1e-3) and ours > 0.5


def _spearman(a, b, batched=True, **kwargs):
    """Quantus' ``correlation_spearman`` for a batch of one: its own fails on SciPy >= 1.17, whose ``spearmanr``
    of two rows returns a float, not an array."""
    return np.array([spearmanr(a[0], b[0]).statistic])


def test_monotonicity_correlation_equals_quantus():
    model, g = box_model(), _gray()
    a = box_truth() + 0.3 * torch.rand(H, W, generator=torch.Generator().manual_seed(3))
    step = 32  # 1,536 pixels in 48 groups of 32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = quantus.MonotonicityCorrelation(
            nr_samples=1, features_in_step=step, perturb_func=_black, similarity_func=_spearman, disable_warnings=True
        )(  # fmt: skip
            model=Gray(model, g.expand(1, 3, H, W)).eval(),
            x_batch=g.numpy(),
            y_batch=np.array([0]),
            a_batch=a[None, None].numpy(),
            device="cpu",
            softmax=False,
        )[0]  # fmt: skip  (a softmax over one output is always 1)
    x = g.expand(1, 3, H, W).contiguous()
    ours, atts, variances = monotonicity_correlation(target_model(model, x, "mean"), x, a, None, patch=1,
                                                     n_steps=H * W // step, n_samples=1, replacement="black",
                                                     chunk_size=8)  # fmt: skip
    assert ours == pytest.approx(theirs, abs=1e-6)
    # by hand: the box's 128 pixels are the 4 most relevant groups; the others move the target by float32 rounding
    assert sum(v > 1e-9 for v in variances) == 4 and min(variances[-4:]) > 1e-6
    assert atts == sorted(atts)


def _ctx(region="full"):
    model, x = box_model(), box_image()
    return image_context(model, x, AssessConfig(methods=("random",), metrics=("road",), perturb_region=region),
                         chunk_size=8)  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "options", "column"),
    [
        (Road, {"patch": 4}, "road"),
        (InsertionDeletion, {"patch": 4, "replacement": "black"}, "insertion_deletion"),
        (MonotonicityCorrelation, {"patch": 4, "n_steps": 24, "n_samples": 2}, "monotonicity_correlation"),
        (FaithfulnessCorrelation, {"n_perturbations": 64, "patch": 4, "adaptive": False}, "faithfulness_correlation"),
    ],
)
def test_the_true_map_beats_random_on_every_faithfulness_metric(metric, options, column):
    ctx = _ctx()
    m = metric(metric.configure(options))
    prepared = m.prepare(ctx)
    truth = m.score(prepared, Attribution("truth", box_truth()[None, None]))[column]
    random = [m.score(prepared, Attribution("random", torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(s))))[column]
              for s in range(3)]  # fmt: skip
    assert truth > max(random) + 0.1, (truth, random)


def test_insertion_is_lerf_read_backwards_by_hand():
    ctx = _ctx()
    truth = box_truth()
    curves = perturbation_curves(ctx.model, ctx.x, truth, (0.0, 0.25, 0.5, 0.75, 1.0), "black", 4, chunk_size=8)
    x, ref = ctx.x, ctx.depth
    order = torch.argsort(truth.flatten(), descending=True)
    for k, frac in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        inserted = torch.zeros_like(x).flatten(2)  # the black baseline with the top share inserted
        top = order[: round(frac * H * W)]
        inserted[..., top] = x.flatten(2)[..., top]
        with torch.no_grad():
            d = float(((ctx.model(inserted.view_as(x))[0, 0] - ref) ** 2).mean().sqrt())
        # 4-px patches of a box aligned to them: the top share is whole patches, as LeRF at 1 - frac keeps
        assert curves.rmse["lerf"][4 - k] == pytest.approx(d, abs=1e-6)
    row = insertion_deletion(curves)
    full = curves.rmse["morf"][-1]
    assert row["deletion_auc"] == pytest.approx(curves.auc("morf") / full)
    assert row["insertion_auc"] == pytest.approx(1 - curves.auc("lerf") / full)


def test_irof_ranks_the_true_map_above_random_and_superpixels_cut_a_real_image(nyu):
    ctx = _ctx()
    blocks = (torch.arange(H)[:, None] // 8) * (W // 8) + torch.arange(W)[None] // 8  # 24 squares of 8 px
    area = lambda m: irof_area(segment_curves(ctx.model, ctx.x, m, blocks, chunk_size=8)["morf"])  # noqa: E731
    truth = area(box_truth())
    random = [area(torch.rand(H, W, generator=torch.Generator().manual_seed(s))) for s in range(3)]
    # the box is 2 of the 24 squares, removed first: from step 2 on the curve is at its end, so the area is >= 23/24
    assert truth >= 23 / 24 and truth > max(random) + 0.1
    labels = superpixels(nyu[0].image[None], 50)  # SLIC on a real image (on 32x48 noise it returns one segment)
    assert 20 <= labels.unique().numel() <= 80 and labels.min() == 0


def test_irof_by_hand_on_two_segments():
    ctx = _ctx()
    segments = torch.zeros(H, W, dtype=torch.long)
    segments[BOX] = 1  # segment 1: the box; segment 0: the rest
    curves = segment_curves(ctx.model, ctx.x, box_truth(), segments, chunk_size=4)
    mean = ctx.x.mean((2, 3), keepdim=True)
    boxed = ctx.x.clone()
    boxed[..., BOX[0], BOX[1]] = mean[..., 0, 0][..., None, None]
    with torch.no_grad():
        d_box = float(((ctx.model(boxed)[0, 0] - ctx.depth) ** 2).mean().sqrt())
    assert curves["morf"][0] == 0 and curves["morf"][1] == pytest.approx(d_box, abs=1e-6)
    assert curves["lerf"][1] == pytest.approx(0.0, abs=1e-6)  # the rest of the image moves nothing
    assert curves["morf"][2] == pytest.approx(curves["lerf"][2], abs=1e-6)  # both end with everything replaced


def test_monotonicity_and_road_stay_in_the_region():
    ctx = _ctx("8,4,40,24")  # x0,y0,x1,y1: the box (rows 8-15, columns 16-31) lies inside
    m = MonotonicityCorrelation(MonotonicityCorrelation.configure({"patch": 4, "n_steps": 8, "n_samples": 1}))
    row = m.score(ctx, Attribution("truth", box_truth()[None, None]))
    assert row["monotonicity_correlation"] > 0.5
    with pytest.raises(InputError, match="n_steps 200 exceeds the region's 40 patches"):
        MonotonicityCorrelation(MonotonicityCorrelation.configure({"patch": 4, "n_steps": 200})).score(
            ctx, Attribution("truth", box_truth()[None, None]))  # fmt: skip


def test_bad_options_and_the_old_name_are_one_line():
    with pytest.raises(InputError, match="symmetrically"):
        InsertionDeletion.configure({"fractions": [0, 0.2, 1.0]})
    with pytest.raises(InputError, match="road_replacement"):
        Road.configure({"replacement": "mean"})
    with pytest.raises(InputError, match="irof_n_segments"):
        Irof.configure({"n_segments": 1})
    with pytest.raises(UnknownNameError, match="now called 'faithfulness_correlation'"):
        METRICS.get("faithfulness_estimate")
