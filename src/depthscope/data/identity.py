"""Which data a run folder holds results of: a dataset's root and a fingerprint of its file list and sizes.

Resumable runs (``assess``, ``compare``, ``predict``) skip images whose key (path under the root without suffix)
is already done; keys like ``image_0`` recur in every dataset, so a rerun into the same folder with another
dataset would silently keep the first dataset's rows. The identity written beside the results lets the rerun
tell the two apart (:func:`depthscope.output.files.claim_folder`)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def _size(path: str | os.PathLike | None) -> int:
    """The file's size in bytes; -1 for none or one that cannot be read (it is reported when it is read)."""
    if path is None:
        return -1
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def data_identity(root: str | os.PathLike, entries: Iterable[tuple[str, Sequence[str | os.PathLike | None]]],
                  kind: str) -> dict[str, Any]:  # fmt: skip
    """The identity of a dataset: ``root`` (absolute), ``kind`` (its reader), ``files`` (how many entries) and
    ``fingerprint``, the SHA-256 of every entry's key and the sizes of its files, in order.

    Args:
        root: the folder or file the dataset was opened from.
        entries: ``(key, files)`` per sample, e.g. ``("image_0", (image path, depth path or None))``.
        kind: the dataset's protocol name (``nyu``, ``kitti``, ``pairs``, ``images``).

    Returns:
        A JSON-ready dict.

    Example:
        >>> ident = data_identity("/data/a", [("image_0", (None,))], "pairs")
        >>> ident["root"], ident["files"], len(ident["fingerprint"])
        ('/data/a', 1, 64)
    """
    h = hashlib.sha256()
    n = 0
    for key, files in entries:
        h.update(("\t".join([key, *(str(_size(f)) for f in files)]) + "\n").encode())
        n += 1
    where = str(root) if str(root).startswith("<") else os.path.abspath(Path(root))  # "<MyDataset>": no file
    return {"root": where, "kind": kind, "files": n, "fingerprint": h.hexdigest()}
