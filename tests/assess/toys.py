"""Toy depth models whose true relevance is known, shared by the assessment tests."""

import torch

from depthscope.models import wrap

H, W = 32, 48
BOX = (slice(8, 16), slice(16, 32))  # rows 8-15, columns 16-31: 128 of 1,536 pixels (8.3 %)


class BoxDepth(torch.nn.Module):
    """Depth ``1 + 4 x`` (weighted mean of the squared intensities in :data:`BOX`), everywhere: only the box moves
    the depth, and its gradient (``8 w x / n``) changes with the input, so maps of nearby inputs differ."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(0.5, 1.5, 3).view(1, 3, 1, 1))

    def forward(self, x):
        v = (self.w * x[:, :, BOX[0], BOX[1]] ** 2).mean((1, 2, 3))
        return (1 + 4 * v).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])


def box_model():
    return wrap(BoxDepth(), input_size=(H, W), mean=None, std=None, unit="m", name="box")


def box_image(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(seed)) * 0.8 + 0.1


def box_truth() -> torch.Tensor:
    """The true relevance ``(H, W)``: 1 in the box, a faint ramp elsewhere (no ties)."""
    t = 1e-3 * torch.linspace(0, 1, H * W).view(H, W)
    t[BOX] += 1.0
    return t


class LocalDepth(torch.nn.Module):
    """A small nonlinear convolutional net: each pixel's depth reads a 5x5 neighbourhood of the image, so the map
    of a region's depth lies in that region, and its blocks (``body.0``, ``body.2``) can be randomised."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(),
                                        torch.nn.Conv2d(4, 1, 3, padding=1))  # fmt: skip
        with torch.no_grad():
            for p in self.body.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return 0.5 + torch.nn.functional.softplus(self.body(x))


def local_model():
    return wrap(LocalDepth(), input_size=(H, W), mean=None, std=None, unit="m", name="local")
