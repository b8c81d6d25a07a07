import hashlib
import shutil

import pytest
import torch

from depthscope.errors import CheckpointError
from depthscope.models import WeightSource, resolve_weights


@pytest.fixture
def blob(tmp_path):
    p = tmp_path / "src" / "w.pth"
    p.parent.mkdir()
    p.write_bytes(b"weights-bytes")
    return p, hashlib.sha256(b"weights-bytes").hexdigest()


def test_lookup_order(tmp_path, blob, monkeypatch):
    path, sha = blob
    env_dir, cache = tmp_path / "env" / "deep" / "er", tmp_path / "cache"
    env_dir.mkdir(parents=True)
    cache.mkdir()
    shutil.copy(path, env_dir / "w.pth")
    shutil.copy(path, cache / "w.pth")
    monkeypatch.setenv("DEPTHSCOPE_WEIGHTS", str(tmp_path / "env"))
    monkeypatch.setenv("DEPTHSCOPE_CACHE", str(cache))
    src = WeightSource("w.pth", path.as_uri(), sha)
    assert resolve_weights(src, path) == path  # explicit path first
    assert resolve_weights(src) == env_dir / "w.pth"  # found anywhere below the env directory
    monkeypatch.delenv("DEPTHSCOPE_WEIGHTS")
    assert resolve_weights(src) == cache / "w.pth"
    (cache / "w.pth").unlink()
    got = resolve_weights(src)  # downloaded (file:// URL: no network in tests) into the cache
    assert got == cache / "w.pth" and got.read_bytes() == b"weights-bytes"


def test_download_rejects_wrong_sha(tmp_path, blob, monkeypatch):
    path, _ = blob
    monkeypatch.delenv("DEPTHSCOPE_WEIGHTS", raising=False)
    monkeypatch.setenv("DEPTHSCOPE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError, match="sha256"):
        resolve_weights(WeightSource("w.pth", path.as_uri(), "0" * 64))
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written left behind


def test_missing_checkpoint_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DEPTHSCOPE_WEIGHTS", raising=False)
    monkeypatch.setenv("DEPTHSCOPE_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="DEPTHSCOPE_WEIGHTS"):
        resolve_weights(WeightSource("nothing.pth"))
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_weights(WeightSource("x.pth"), tmp_path / "nope.pth")


def test_failed_download_says_how_to_point_at_a_local_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("DEPTHSCOPE_WEIGHTS", raising=False)
    monkeypatch.setenv("DEPTHSCOPE_CACHE", str(tmp_path / "cache"))
    gone = (tmp_path / "not-served" / "w.pth").as_uri()  # an unreachable URL, as offline
    with pytest.raises(
        CheckpointError,
        match=r"could not download w.pth .*set DEPTHSCOPE_WEIGHTS to a directory "
        r"containing w.pth.*--weights FILE .*load_model\(\.\.\., weights=FILE\)",
    ):
        resolve_weights(WeightSource("w.pth", gone, "0" * 64))


def test_a_checkpoint_cast_to_fp16_loads_though_its_counters_overflowed(tmp_path, nyu):
    """``{k: v.half()}`` turns batch norms' integer ``num_batches_tracked`` (counts above 65,504) into Inf: the
    weights are fine and the counters are not weights (used only without a momentum), so the model loads with
    the overflowed counters at a new model's value."""
    from depthscope.models import load_model

    ref = load_model("meter-xxs-nyu")
    state = {k: v.half() for k, v in ref.net.state_dict().items()}
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert counters and any(torch.isinf(state[k]).any() for k in counters)  # the case this test is about
    torch.save(state, tmp_path / "fp16.pth")
    half = load_model("meter-xxs-nyu", weights=tmp_path / "fp16.pth")
    loaded = half.net.state_dict()
    overflowed = [k for k in counters if torch.isinf(state[k]).any()]
    assert all(loaded[k].dtype == torch.long for k in counters)
    assert all(int(loaded[k]) == 0 for k in overflowed)  # a freshly built model's count, not Inf cast to int
    with torch.no_grad():
        a, b = ref(nyu[0].image[None]), half(nyu[0].image[None])
    # fp16 weights: 11-bit mantissas, relative error of each weight up to 2^-11; depth moves by well under 5 %
    assert float(((a - b).abs() / a).median()) < 0.05
    state[counters[0]] = torch.tensor(float("nan"))
    bad_weight = next(k for k in state if k.endswith(".weight"))
    state[bad_weight] = torch.full_like(state[bad_weight], float("nan"))
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match=f"NaN/Inf values in 1 tensor\\(s\\): {bad_weight}"):
        load_model("meter-xxs-nyu", weights=tmp_path / "nan.pth")
