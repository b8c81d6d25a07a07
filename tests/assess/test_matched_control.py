"""The structure-matched control: a map's own tiles shuffled. Checked by hand on a tiny map, and on a toy model
whose depth reads one box only: the true map beats its shuffled tiles, which score near the i.i.d. random map."""

import pytest
import torch

from depthscope.assess import AssessConfig
from depthscope.assess.metrics import MatchedControl, MatchedControlConfig, PerturbationCurves, shuffle_blocks
from depthscope.assess.registry import ImageContext
from depthscope.errors import InputError
from depthscope.explain import target_model
from depthscope.explain.attribution import Attribution
from depthscope.models import wrap

H, W = 64, 96


class BoxDepth(torch.nn.Module):
    """Depth 1 + 4 x (mean intensity of rows 16-31, columns 32-63), everywhere: the true relevance is that box."""

    def forward(self, x):
        return (1 + 4 * x[:, :, 16:32, 32:64].mean((1, 2, 3))).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])


def test_shuffle_blocks_moves_whole_tiles_by_hand():
    s = torch.arange(6 * 8, dtype=torch.float32).view(6, 8)  # 2x2 tiles: a 3x4 grid of whole tiles
    t = shuffle_blocks(s, 2, seed=5)
    tiles = lambda m: sorted(m[r : r + 2, c : c + 2].flatten().tolist() for r in (0, 2, 4) for c in (0, 2, 4, 6))  # noqa: E731
    assert tiles(t) == tiles(s) and not torch.equal(t, s)
    assert torch.equal(shuffle_blocks(s, 2, seed=5), t)  # seeded
    odd = torch.arange(5 * 5, dtype=torch.float32).view(5, 5)
    u = shuffle_blocks(odd, 2, seed=1)
    assert torch.equal(u[4], odd[4]) and torch.equal(u[:, 4], odd[:, 4])  # partial edge tiles stay
    with pytest.raises(InputError, match="fewer than 2 whole tiles"):
        shuffle_blocks(odd, 5, seed=0)


def test_the_true_map_beats_its_matched_control_on_a_box_model():
    model = wrap(BoxDepth(), input_size=(H, W), mean=None, std=None, unit="m")
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    truth = torch.zeros(1, 1, H, W)
    truth[..., 16:32, 32:64] = 1.0
    truth += 1e-3 * torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(1))  # no ties
    attr = Attribution("truth", truth)
    with torch.no_grad():
        depth = model(x)[0, 0]
    ctx = ImageContext(model, target_model(model, x, "mean"), x, depth, None, seed=0, chunk_size=8)
    opts = {"replacement": "black", "patch": 4, "fractions": (0.0, 0.05, 0.1, 0.2)}
    af = PerturbationCurves(PerturbationCurves.configure(opts)).score(ctx, attr)["af_perturbation"]
    matched = MatchedControl(MatchedControlConfig(**opts, block=16)).score(ctx, attr)["af_matched"]
    # by hand: the box is 512 of 6,144 pixels (8.3 %); MoRF at 5 % perturbs only box pixels, LeRF none of them
    assert af == pytest.approx(1.0, abs=1e-6)
    # seed 0 moves both box tiles to the bottom row: the shuffled map ranks the true box among its least relevant
    # pixels, so its LeRF moves the depth and its MoRF does not (measured -0.79)
    assert matched < 0 < af


def test_the_matched_control_follows_the_protocol_and_is_a_reference(meter_nyu, nyu):
    cfg = AssessConfig(methods=("random",), metrics=("curves", "matched_control"))
    assert cfg.metric_config("matched_control").replacement == cfg.metric_config("curves").replacement == "blur"
    assert MatchedControl.columns[0].better == "none"
