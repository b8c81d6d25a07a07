from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def int8_checkpoint(tmp_path_factory, nyu_dir) -> Path:
    """METER-XXS-NYU quantised to int8 (calibrated on NYU images 5-9), written to a temporary folder."""
    from depthscope.optimize import OptimizeConfig, optimize

    out = tmp_path_factory.mktemp("int8")
    cfg = OptimizeConfig(calib_images=2, train_images=str(nyu_dir / "image_[5-9].png"))
    return Path(optimize("meter-xxs-nyu", "int8", out, cfg)["checkpoint"])
