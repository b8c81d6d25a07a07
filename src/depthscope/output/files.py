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


def output_path(out: str | os.PathLike, name: str) -> Path:
    """``out / name`` for a file a run writes, refused with one clear error when it would land outside ``out``:
    ``name`` absolute or climbing with ``..``, or a folder on the way that is a symbolic link leading out (a
    file is replaced by a rename, never written through a link).

    Example:
        >>> output_path("runs/p", "scene1/image_0.npy").as_posix()
        'runs/p/scene1/image_0.npy'
        >>> output_path("runs/p", "../../victim/photo.png")
        Traceback (most recent call last):
        depthscope.errors.InputError: ...would write outside the output folder runs/p...
    """
    root = Path(out)
    path = root / name
    parts = Path(name).parts
    if Path(name).is_absolute() or ".." in parts or not parts:
        raise InputError(f"{name!r} would write outside the output folder {root}; nothing was written there")
    real_root = root.resolve()
    real_parent = path.parent.resolve()
    if real_parent != real_root and real_root not in real_parent.parents:
        raise InputError(
            f"{path}: a folder on its way is a link to {real_parent}, which would write outside the output folder "
            f"{root}; nothing was written there"
        )
    return path


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
DATA_RECORD = "dataset.json"
TEMP_GLOB = ".*.tmp"  # what write_atomic leaves behind when its process is killed between write and rename


class RunLock:
    """An exclusive lock on an output directory while a run writes it: ``DIR/.depthscope.lock`` holds the
    holder's host, pid and the process's start time. A second run gets one clear error naming them; a lock whose
    process is gone (a killed run on this host) is taken over, also when its pid now belongs to another process
    (the start time differs). Taking the lock removes the temporary files killed runs left.

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
        import time

        from depthscope.errors import RunLockedError

        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": process_start(os.getpid()),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_umask())
            except FileExistsError:
                holder = _read_holder(self.path)
                if holder.get("host") == socket.gethostname() and not _holds(holder):
                    self.path.unlink(missing_ok=True)  # stale: its run was killed; take it over
                    continue
                who = (f"pid {holder['pid']} on {holder['host']}, started {holder.get('started', 'at an unknown time')}"
                       if "pid" in holder else "an unknown process")  # fmt: skip
                raise RunLockedError(
                    f"{self.path.parent} is being written by another run ({who}); wait for it to finish or use "
                    f"another output directory (if that run is gone, delete {self.path})"
                ) from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(me))
            except OSError as e:
                self.path.unlink(missing_ok=True)
                raise OSError(e.errno, e.strerror, str(self.path)) from None
            self.held = True
            remove_temp_files(self.path.parent)
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


def remove_temp_files(directory: Path) -> int:
    """Remove the temporary files (``.NAME.*.tmp``) that runs killed mid-write left under ``directory``, except in
    sub-folders with a lock of their own (another run's folder: cleaned when that folder's lock is taken).
    Returns how many were removed."""
    import fnmatch

    n = 0
    for here, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not (Path(here) / d / LOCK_NAME).exists()]
        for name in fnmatch.filter(files, TEMP_GLOB):
            p = Path(here) / name
            if not p.is_symlink():
                p.unlink(missing_ok=True)
                n += 1
    return n


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc/PID/stat`` field 22), or None where
    that is not known: with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[19]


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    try:
        holder = json.loads(text)
        return holder if isinstance(holder, dict) else {}
    except ValueError:
        parts = text.split()  # written by depthscope before 2026-12-06: "host pid"
        return {"host": parts[0], "pid": parts[1]} if len(parts) == 2 and parts[1].isdigit() else {}


def _holds(holder: dict[str, Any]) -> bool:
    """Whether the process that wrote ``holder`` still runs (the same pid and, where known, start time)."""
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return True  # unreadable: assume held; the error says how to remove it
    if not _alive(pid):
        return False
    started = holder.get("process_start")
    return started is None or process_start(pid) in (None, started)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def claim_folder(out: str | os.PathLike, identity: dict[str, Any], force_new: bool = False) -> Path | None:
    """Record which data run folder ``out`` holds results of (``out/dataset.json``), under the run's lock.

    A folder written with other data (another root, or files added, removed or changed) is refused with one
    error naming both, since resumed runs skip images by key (``image_0`` is in every dataset). ``force_new``
    moves everything the folder holds to ``out/previous-<time>/`` (nothing is deleted) and starts afresh.

    Args:
        out: the run folder.
        identity: the data's :func:`~depthscope.data.identity.data_identity`.
        force_new: start a new run here, keeping the old one's files aside.

    Returns:
        The folder the old files were moved to, or None.
    """
    out = Path(out)
    record = out / DATA_RECORD
    before = None
    if record.is_file():
        try:
            before = json.loads(record.read_text())
        except ValueError:
            before = {"root": f"an unreadable {record}"}
    moved = None
    if force_new:
        moved = _move_aside(out)
    elif before is not None and any(before.get(k) != identity.get(k) for k in ("root", "fingerprint")):
        same_root = before.get("root") == identity["root"]
        then = f"{before.get('root')} ({before.get('files', '?')} files)"
        now = f"{identity['root']} ({identity['files']} files)"
        what = (f"data at {identity['root']} that has changed since ({before.get('files', '?')} files then, "
                f"{identity['files']} now, or their sizes)" if same_root else f"{then}, not of {now}")  # fmt: skip
        raise InputError(
            f"{out} holds results of {what}; resumed runs skip images by name, so they would be mixed: use another "
            "--out, or --force-new to move the old results to a previous-<time> folder inside it and start afresh"
        )
    write_json(record, identity)
    return moved


def _move_aside(out: Path) -> Path | None:
    import time

    entries = [p for p in out.iterdir() if p.name != LOCK_NAME and not p.name.startswith("previous-")]
    if not entries:
        return None
    dest = out / f"previous-{time.strftime('%Y%m%d-%H%M%S')}"
    k = 1
    while dest.exists():
        dest, k = out / f"previous-{time.strftime('%Y%m%d-%H%M%S')}-{k}", k + 1
    dest.mkdir()
    for p in entries:
        os.replace(p, dest / p.name)
    return dest
