"""Corruptions by hand: ImageNet-C's constants, determinism per seed, [0, 1] range."""

import numpy as np
import pytest
import torch
from PIL import Image

from depthscope.errors import InputError, UnknownNameError
from depthscope.ops.corruptions import CORRUPTIONS, corrupt

X = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_every_corruption_is_seeded_changes_the_image_and_stays_in_range(name):
    a, b = corrupt(X, name, 3, seed=5), corrupt(X, name, 3, seed=5)
    assert torch.equal(a, b) and a.shape == X.shape
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert float((a - X).abs().mean()) > 1e-3
    assert (
        float((corrupt(X, name, 5, seed=5) - X).abs().mean())
        >= float((corrupt(X, name, 1, seed=5) - X).abs().mean()) - 0.01
    )


def test_noise_and_contrast_and_brightness_by_hand():
    noisy = corrupt(X, "gaussian_noise", 2, seed=1) - X
    inside = (X + noisy > 0.001) & (X + noisy < 0.999)
    assert float(noisy[inside].std()) == pytest.approx(0.12, rel=0.05)  # ImageNet-C severity 2: std 0.12
    assert not torch.equal(corrupt(X, "gaussian_noise", 2, seed=1), corrupt(X, "gaussian_noise", 2, seed=2))
    low = corrupt(X, "contrast", 3)  # c = 0.2: deviations from the channel mean scaled by 0.2
    mean = X.mean((1, 2), keepdim=True)
    assert torch.allclose(low - mean, 0.2 * (X - mean), atol=1e-6)
    grey = torch.full((3, 8, 8), 0.5)
    assert torch.allclose(corrupt(grey, "brightness", 2), torch.full((3, 8, 8), 0.7))  # HSV value + 0.2
    quant = corrupt(X, "color_quant", 5)  # 1 bit: 0 or 128/255
    levels = torch.unique(quant)
    assert len(levels) <= 2 and all(v == 0 or v == pytest.approx(128 / 255) for v in levels.tolist())


def test_jpeg_and_pixelate_are_pils():
    img = Image.fromarray((X.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    small = img.resize((int(64 * 0.4), int(48 * 0.4)), Image.BOX).resize((64, 48), Image.BOX)
    assert torch.allclose(
        corrupt(X, "pixelate", 3), torch.from_numpy(np.asarray(small) / 255.0).permute(2, 0, 1).float()
    )
    import io

    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=15)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")) / 255.0
    assert torch.allclose(corrupt(X, "jpeg_compression", 3), torch.from_numpy(jpeg).permute(2, 0, 1).float())


def test_bad_names_and_severities_are_one_line():
    with pytest.raises(UnknownNameError, match="unknown corruption 'frost'"):
        corrupt(X, "frost", 1)
    with pytest.raises(InputError, match="severity must be one of 1-5, got 6"):
        corrupt(X, "fog", 6)
