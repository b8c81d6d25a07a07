import pytest
import torch
from torch import nn

from depthscope.errors import InputError
from depthscope.models import wrap


class Const(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return self.w * torch.ones(x.shape[0], 1, x.shape[2] // 2, x.shape[3] // 2)


@pytest.mark.parametrize(
    ("unit", "raw", "metres"), [("m", 2.5, 2.5), ("cm", 250.0, 2.5), ("dm", 25.0, 2.5), ("mm", 2500.0, 2.5)]
)
def test_wrap_units_and_resolution(unit, raw, metres):
    m = wrap(Const(raw), input_size=(32, 48), unit=unit)
    out = m(torch.rand(2, 3, 60, 80))
    assert out.shape == (2, 1, 60, 80)
    torch.testing.assert_close(out, torch.full_like(out, metres))


def test_wrap_bad_arguments():
    with pytest.raises(InputError, match="unit"):
        wrap(Const(1.0), input_size=(8, 8), unit="inch")
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        wrap(Const(1.0), input_size=(8, 8))(torch.rand(1, 4, 8, 8))


def test_normalisation_is_data(meter_nyu):
    img = torch.rand(1, 3, 192, 256)
    x = meter_nyu.prepare(img)
    ref = (img - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(x, ref)
