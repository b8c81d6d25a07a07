"""Result files written so that nothing finished is lost: atomic JSON, append-only CSV with resume."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from depthscope.errors import InputError


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results get the mode any new file would
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a failed write names no file: name the target
            raise OSError(e.errno, e.strerror, str(p)) from None
        raise
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
            raise InputError(f"{self.path}: existing columns {reader.fieldnames} differ from {self.columns}")
        self.rows = [r for r in reader if None not in r.values()]

    def append(self, row: Mapping[str, Any]) -> None:
        try:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n").writerow(row)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # disk full mid-run: the rows before are on disk; a torn row is dropped on resume
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self.rows.append({k: str(row.get(k, "")) for k in self.columns})


LOCK_NAME = ".depthscope.lock"


class RunLock:
    """An exclusive lock on an output directory while a run writes it: ``DIR/.depthscope.lock`` holds the
    holder's host and pid. A second run gets one clear error naming them; a lock whose process is gone (a killed
    run on this host) is taken over.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with RunLock(d):
        ...     RunLock(d).acquire()
        Traceback (most recent call last):
        depthscope.errors.RunLockedError: ... is being written by another run (pid ...); wait for it ...
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.path = Path(directory) / LOCK_NAME
        self.held = False

    def acquire(self) -> RunLock:
        import socket

        from depthscope.errors import RunLockedError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
            except FileExistsError:
                holder = self.path.read_text().split() if self.path.exists() else []
                if len(holder) == 2 and holder[0] == socket.gethostname() and not _alive(int(holder[1])):
                    self.path.unlink(missing_ok=True)  # stale: its run was killed; take it over
                    continue
                who = f"pid {holder[1]} on {holder[0]}" if len(holder) == 2 else "an unknown process"
                raise RunLockedError(
                    f"{self.path.parent} is being written by another run ({who}); wait for it to finish or use "
                    f"another output directory (if that run is gone, delete {self.path})"
                ) from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(me)
            except OSError as e:
                self.path.unlink(missing_ok=True)
                raise OSError(e.errno, e.strerror, str(self.path)) from None
            self.held = True
            return self
        raise RunLockedError(f"{self.path}: could not take the lock")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
