"""Named protocols: each preset gives the settings it names, and under every preset a map of the region a model's
depth depends on scores above the random map, and its inverse below."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from depthscope.assess import AssessConfig, af_perturbation, perturbation_curves
from depthscope.assess.config import PROTOCOLS
from depthscope.assess.metrics import CurvesConfig
from depthscope.models import wrap
from depthscope.seeding import generator

REGION = (slice(16, 48), slice(16, 48))  # aligned with 8- and 16-pixel patches of a 64x64 image


class RegionDepth(nn.Module):
    """Depth (m) everywhere = 1 + 2 x the mean intensity of REGION: only those pixels matter."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        v = z[:, :, REGION[0], REGION[1]].mean(dim=(1, 2, 3))
        return (1 + 2 * v).view(-1, 1, 1, 1).expand(-1, 1, *z.shape[-2:])


def test_presets_give_the_settings_they_name(tmp_path, nyu_dir):
    from depthscope.assess import assess

    for name, preset in PROTOCOLS.items():
        cfg = AssessConfig(protocol=name)
        assert cfg.metric_config("curves") == CurvesConfig(**{k: tuple(v) if isinstance(v, list) else v
                                                              for k, v in preset["curves"].items()})  # fmt: skip
    paper = AssessConfig(protocol="paper").metric_config("curves")
    assert (paper.replacement, paper.patch, paper.fractions[-1], len(paper.fractions)) == ("mean", 1, 0.5, 11)
    # an explicit option overrides the preset; the run records the preset's name and the resolved settings
    cfg = AssessConfig(
        methods=("random",), metrics=("curves",), protocol="paper", metric_options={"curves": {"patch": 8}}
    )
    assess(["meter-xxs-nyu"], nyu_dir, cfg, tmp_path, limit=1)
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["protocol"] == "paper" and settings["metric_configs"]["curves"]["patch"] == 8
    with pytest.raises(Exception, match="unknown protocol 'nope'; valid protocols: paper, recommended"):
        AssessConfig(protocol="nope")


@pytest.mark.parametrize("name", list(PROTOCOLS))
@pytest.mark.parametrize("replacement", ["mean", "black", "blur", "noise", "inpaint"])
def test_region_map_beats_random_and_its_inverse_loses_under_every_preset(name, replacement):
    model = wrap(RegionDepth(), input_size=(64, 64), mean=None, std=None)
    g = generator(0, "test_image")
    x = (0.2 + 0.1 * torch.rand(1, 3, 64, 64, generator=g)).clone()
    x[..., REGION[0], REGION[1]] += 0.6  # a bright textured region on a dark textured ground
    region = torch.zeros(64, 64)
    region[REGION] = 1
    maps = {"region": region + 0.01 * torch.rand(64, 64, generator=g), "random": torch.rand(64, 64, generator=g)}
    maps["inverse"] = maps["region"].max() - maps["region"]
    cfg = AssessConfig(protocol=name, metrics=("curves",), metric_options={"curves": {"replacement": replacement}})
    c = cfg.metric_config("curves")
    af = {}
    for k, score in maps.items():
        curves = perturbation_curves(model, x, score, c.fractions, c.replacement, c.patch, seed=0, chunk_size=8)
        af[k] = af_perturbation(curves.rmse["morf"], curves.rmse["lerf"])
    assert af["region"] > 0.5 and af["inverse"] < -0.5 and af["inverse"] < af["random"] < af["region"], af
    assert abs(af["random"]) < 0.5, af
