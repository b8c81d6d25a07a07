"""Finding and loading checkpoints safely (SPEC §1).

Lookup order for a checkpoint file name: an explicit path; a directory named by ``DEPTHSCOPE_WEIGHTS`` (searched
recursively for the file name); the user cache (``$DEPTHSCOPE_CACHE`` or ``~/.cache/depthscope/weights``); a
download from the checkpoint's public URL, accepted only if its sha256 matches. Loading never executes code:
``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from depthscope.errors import CheckpointError

ENV_WEIGHTS = "DEPTHSCOPE_WEIGHTS"
ENV_CACHE = "DEPTHSCOPE_CACHE"


@dataclass(frozen=True)
class WeightSource:
    """Where a registered checkpoint comes from: its file name (may include a folder, matched under the weights
    directory), public URL and sha256, and ``origin``: where to get it by hand when there is no direct URL."""

    filename: str
    url: str | None = None
    sha256: str | None = None
    origin: str | None = None


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "depthscope" / "weights")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(src: WeightSource, dest: Path) -> Path:
    """Download ``src.url`` to ``dest`` atomically; reject it unless its sha256 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    os.close(fd)
    try:
        try:
            urllib.request.urlretrieve(src.url, tmp)  # noqa: S310 (URL is registered data, not user input)
        except OSError as e:
            raise CheckpointError(
                f"could not download {src.filename} from {src.url}: {e}; to use a local copy, set "
                f"{ENV_WEIGHTS} to a directory containing {src.filename}, put it in {dest.parent}, or pass "
                "--weights FILE (Python: load_model(..., weights=FILE))"
            ) from None
        if src.sha256 and (got := sha256_of(Path(tmp))) != src.sha256:
            raise CheckpointError(f"downloaded {src.filename} has sha256 {got}, expected {src.sha256}; file discarded")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


SEARCH_DEPTH = 3  # folders below DEPTHSCOPE_WEIGHTS searched for a checkpoint's file name


def find_under(root: Path, filename: str, depth: int = SEARCH_DEPTH) -> Path | None:
    """The first ``filename`` (may include folders) at most ``depth`` folders below ``root``, sorted; unreadable
    folders are skipped and the walk is bounded, so ``DEPTHSCOPE_WEIGHTS=/`` neither hangs nor fails."""
    level = [root]
    for _ in range(depth + 1):
        for d in level:
            if (d / filename).is_file():
                return d / filename
        nxt = []
        for d in level:
            try:
                nxt += sorted(c for c in d.iterdir() if c.is_dir() and not c.is_symlink())
            except OSError:
                continue
        level = nxt[:10_000]
    return None


def existing_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a file; one error naming it otherwise (checked before any work starts)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    return p


def resolve_weights(src: WeightSource, path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return a local path for ``src`` following the documented lookup order."""
    if path is not None:
        return existing_checkpoint(path)
    if env := os.environ.get(ENV_WEIGHTS):
        root = Path(env)
        if not root.is_dir():
            raise CheckpointError(f"{ENV_WEIGHTS}={env} is not a directory")
        hit = find_under(root, src.filename)
        if hit is not None:
            return hit
    cached = cache_dir() / src.filename
    if cached.is_file():
        return cached
    if download and src.url:
        return _download(src, cached)
    where = (f"set {ENV_WEIGHTS} to a directory containing it, put it in {cache_dir()}, or pass --weights FILE "
             "(Python: load_model(..., weights=FILE))")  # fmt: skip
    origin = f"; the official file comes from {src.url}" if src.url else ""
    if src.origin:
        origin += f"; {src.origin}"
    raise CheckpointError(f"checkpoint {src.filename} not found: {where}{origin}")


def load_registered(
    net: nn.Module, src: WeightSource | None, weights: str | os.PathLike | None, pretrained: bool
) -> Path | None:
    """Load ``weights`` (an explicit file) or, when ``pretrained``, the registered ``src`` into ``net`` strictly;
    return the file used, or None when ``net`` keeps its random initialisation."""
    if weights is None and not (pretrained and src is not None):
        return None
    path = resolve_weights(src or WeightSource(Path(str(weights)).name), weights)
    load_into(net, read_state_dict(path), str(path))
    return path


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``.safetensors`` or a torch file (``weights_only=True``).

    Accepts a bare state_dict or a dict holding it under ``model``/``state_dict``; strips a DataParallel
    ``module.`` prefix.
    """
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(p))
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickled code, wrong format
        raise CheckpointError(f"cannot read checkpoint {p}: {_without_unsafe_advice(e)}") from None
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {p} does not hold a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _without_unsafe_advice(e: Exception) -> str:
    """The reason a torch file was refused, without torch's advice to re-run with ``weights_only=False``: for a
    file that carries code that advice is how it would run."""
    text = str(e).split("\n")
    keep = [
        t
        for t in text
        if t.strip() and "weights_only" not in t and "Re-running" not in t and "WeightsUnpickler" not in t
    ]
    reason = " ".join(keep).strip() or "it holds objects other than tensors"
    if "weights_only" in str(e) or "Unsupported global" in str(e):
        reason = f"it holds code or objects other than tensors, which depthscope never loads ({reason[:300]})"
    return f"{type(e).__name__}: {reason}"


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load ``state`` strictly; a mismatch names the missing, unexpected and wrongly shaped keys, and tensors
    holding NaN or Inf are refused (they would give NaN depth, or a finite-looking RMSE over what is left).
    Counters the model keeps as integers (batch norms' ``num_batches_tracked``) are not weights: a checkpoint cast
    to fp16 overflows them to Inf, and the module's own value (a new model's 0) is kept instead."""
    own_dtypes = {k: v.dtype for k, v in module.state_dict().items()}
    counters = {k for k, v in state.items() if k in own_dtypes and not own_dtypes[k].is_floating_point
                and v.is_floating_point() and not torch.isfinite(v).all()}  # fmt: skip
    if counters:
        own = module.state_dict()
        state = {**state, **{k: own[k] for k in counters}}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"checkpoint {origin} has NaN/Inf values in {len(bad)} tensor(s): {', '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else "")
        )
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:

        def show(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "") or "none"

        raise CheckpointError(
            f"checkpoint {origin} does not match {type(module).__name__}: missing keys: {show(missing)}; "
            f"unexpected keys: {show(unexpected)}; shape mismatches: {show(shapes)}"
        )
    module.load_state_dict(state, strict=True)
