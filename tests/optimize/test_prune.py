"""Structured pruning: removed channels are really gone (params and MACs drop by the ratio), and the pruned
network computes exactly what the original computes with those channels' consumer weights zeroed."""

import copy

import pytest
import torch

from depthscope.efficiency.flops import count_macs
from depthscope.efficiency.params import count_params
from depthscope.models.channels import meter_groups, prune_fraction, resize_like
from depthscope.optimize.prune import prune_channels


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_params_and_macs_drop_by_the_ratio(meter_nyu, ratio):
    net = meter_nyu.net
    x = torch.zeros(1, 3, 192, 256)
    pruned, _ = prune_channels(net, ratio)
    assert 1 - count_params(pruned) / count_params(net) == pytest.approx(ratio, abs=0.05)
    assert 1 - count_macs(pruned, x).macs / count_macs(net, x).macs == pytest.approx(ratio, abs=0.05)


def test_pruned_equals_original_with_removed_channels_zeroed(meter_nyu, small_image):
    net = meter_nyu.net
    pruned = prune_fraction(net, 0.6)
    zeroed = copy.deepcopy(net)
    for g_orig, g_pruned in zip(meter_groups(zeroed), meter_groups(pruned), strict=True):
        n_keep = g_pruned.size
        keep = torch.sort(torch.topk(g_orig.importance(), n_keep).indices).values
        drop = torch.ones(g_orig.size, dtype=torch.bool)
        drop[keep] = False
        with torch.no_grad():
            for m in g_orig.consumers:
                m.weight[:, drop] = 0
    x = meter_nyu.prepare(small_image)
    with torch.no_grad():
        assert torch.allclose(pruned(x), zeroed(x), rtol=1e-4, atol=1e-3)


def test_resize_like_rebuilds_the_pruned_shapes(meter_nyu):
    pruned, _ = prune_channels(meter_nyu.net, 0.3)
    fresh = resize_like(copy.deepcopy(meter_nyu.net), pruned.state_dict())
    fresh.load_state_dict(pruned.state_dict())  # strict: every shape matches
    assert count_params(fresh) == count_params(pruned)
