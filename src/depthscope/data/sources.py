"""Where bundled sample data is found: ``DEPTHSCOPE_DATA`` (a directory), else ``../shared/data`` beside a
checkout. Like the weight lookup, it is one mechanism for users, tests and CI."""

from __future__ import annotations

import os
from pathlib import Path

from depthscope.errors import InputError

ENV_DATA = "DEPTHSCOPE_DATA"
DEFAULT_SAMPLE = "nyu_sample"


def data_roots() -> list[Path]:
    roots = [Path(os.environ[ENV_DATA])] if os.environ.get(ENV_DATA) else []
    here = Path.cwd()
    roots += [p / "shared" / "data" for p in (here, *here.parents)][:4]
    return roots


def find_data(name: str = DEFAULT_SAMPLE) -> Path:
    """The directory ``name`` (e.g. ``nyu_sample``) under the first data root that has it."""
    for root in data_roots():
        if (root / name).is_dir():
            return root / name
    where = ", ".join(str(r) for r in data_roots())
    raise InputError(f"sample data {name!r} not found in {where}; set {ENV_DATA} to the directory holding it")
