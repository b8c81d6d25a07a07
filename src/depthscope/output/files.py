"""Result files written so that nothing finished is lost: atomic JSON, append-only CSV with resume."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return p


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=float) + "\n")


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` atomically as CSV (columns: ``columns`` or the union of the keys, in first-seen order)."""
    cols = list(columns) if columns else list(dict.fromkeys(k for r in rows for k in r))
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return write_atomic(path, buf.getvalue())


class CsvAppender:
    """An append-only CSV of results, one row per finished unit of work, flushed and fsynced per row.

    On reopening, rows already on disk are read back (a torn last line from a crash is dropped), so a rerun can
    skip finished work; the header is fixed by the first row ever written.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.rows: list[dict[str, str]] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            self._recover()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, ",".join(self.columns) + "\n")

    def _recover(self) -> None:
        text = self.path.read_text()
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
        if complete != text:  # drop a torn last row
            write_atomic(self.path, complete)
        reader = csv.DictReader(complete.splitlines())
        if reader.fieldnames and list(reader.fieldnames) != self.columns:
            raise ValueError(f"{self.path}: existing columns {reader.fieldnames} differ from {self.columns}")
        self.rows = [r for r in reader if None not in r.values()]

    def append(self, row: Mapping[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n").writerow(row)
            f.flush()
            os.fsync(f.fileno())
        self.rows.append({k: str(row.get(k, "")) for k in self.columns})
