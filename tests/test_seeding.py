import torch

from depthscope.seeding import generator, stream_seed


def test_same_seed_and_stream_reproduce_and_streams_differ():
    a = torch.randn(1000, generator=generator(0, "infidelity"))
    assert torch.equal(a, torch.randn(1000, generator=generator(0, "infidelity")))
    assert not torch.equal(a, torch.randn(1000, generator=generator(0, "smoothgrad")))
    assert not torch.equal(a, torch.randn(1000, generator=generator(1, "infidelity")))
    assert 0 <= stream_seed(0, "x") < 2**63  # torch accepts it


class _Mean(torch.nn.Module):
    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        self.weights = torch.ones(1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)).unsqueeze(1)


def test_random_map_is_uncorrelated_with_the_infidelity_noise_of_the_same_seed():
    """Regression: with ``manual_seed(seed)`` in both, the random map of image 0 correlated -0.35 with the first
    Infidelity draw's red channel (and SmoothGrad's noise was the Infidelity noise, scaled)."""
    from depthscope.assess import noise_draws
    from depthscope.explain.maps import random_map

    h, w = 240, 320
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(5))
    rmap = random_map(_Mean(h, w), x, seed=0).raw.flatten()
    noise = noise_draws(_Mean(h, w), x, 2, seed=0, chunk_size=2, control_variate=False).perturbation
    for k in range(2):
        for c in range(3):
            assert abs(torch.corrcoef(torch.stack([rmap, noise[k, c].flatten()]))[0, 1]) < 0.02
    smooth = torch.randn(noise.shape, generator=generator(0, "smoothgrad"))  # the stream smoothgrad draws from
    assert abs(torch.corrcoef(torch.stack([noise.flatten(), smooth.flatten()]))[0, 1]) < 0.01
