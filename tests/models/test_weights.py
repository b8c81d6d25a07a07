import hashlib
import shutil

import pytest

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
