"""Where runs write: output paths stay inside the output folder, a folder remembers which data it holds, the run
lock tells a live holder from a reused pid, and temporary files of killed runs are removed."""

import json
import os
import socket
import subprocess
import sys

import pytest

from depthscope.data.identity import data_identity
from depthscope.errors import InputError, RunLockedError
from depthscope.output.files import (
    DATA_RECORD,
    LOCK_NAME,
    RunLock,
    claim_folder,
    output_path,
    process_start,
    write_atomic,
)


def test_an_output_path_never_leaves_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert output_path(out, "scene/image_0.npy") == out / "scene" / "image_0.npy"
    for name in ("../victim.png", "a/../../victim.png", str(tmp_path / "victim.png"), ""):
        with pytest.raises(InputError, match="outside the output folder|would write outside"):
            output_path(out, name)
    (tmp_path / "elsewhere").mkdir()
    (out / "scene").symlink_to(tmp_path / "elsewhere")  # a folder on the way that leads out
    with pytest.raises(InputError, match="is a link to .*elsewhere"):
        output_path(out, "scene/image_0.npy")


def test_write_atomic_replaces_a_link_and_leaves_its_target_alone(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / "result.txt"
    link.symlink_to(victim)
    write_atomic(link, "result")
    assert victim.read_text() == "precious" and not link.is_symlink() and link.read_text() == "result"


def ident(root, *sizes):
    return data_identity(root, [(f"image_{k}", ()) for k in range(len(sizes))], "pairs") | {
        "fingerprint": ",".join(map(str, sizes))
    }


def test_a_folder_of_other_data_is_refused_and_force_new_moves_it_aside(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    claim_folder(out, ident("/data/a", 1, 2))
    (out / "results.csv").write_text("rows of a\n")
    claim_folder(out, ident("/data/a", 1, 2))  # the same data: a resume
    assert json.loads((out / DATA_RECORD).read_text())["root"] == "/data/a"
    with pytest.raises(
        InputError, match=r"holds results of /data/a \(2 files\), not of /data/b \(2 files\).*--force-new"
    ):
        claim_folder(out, ident("/data/b", 1, 2))
    with pytest.raises(InputError, match="data at /data/a that has changed since"):
        claim_folder(out, ident("/data/a", 1, 3))  # same root, a file replaced
    moved = claim_folder(out, ident("/data/b", 1, 2), force_new=True)
    assert moved.parent == out and moved.name.startswith("previous-")
    assert (moved / "results.csv").read_text() == "rows of a\n" and not (out / "results.csv").exists()
    assert json.loads((out / DATA_RECORD).read_text())["root"] == "/data/b"


def test_a_lock_whose_pid_was_reused_is_taken_over_and_a_live_one_is_not(tmp_path):
    me = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": process_start(os.getpid())}
    (tmp_path / LOCK_NAME).write_text(json.dumps(me | {"started": "2026-12-06T07:00:00+0000"}))
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()} on .*started 2026-12-06T07:00:00"):
        RunLock(tmp_path).acquire()
    if me["process_start"] is None:
        pytest.skip("no /proc here: a reused pid cannot be told from its first process")
    # this process's pid, but another start time: the run that wrote it is gone and its pid was given again
    (tmp_path / LOCK_NAME).write_text(json.dumps(me | {"process_start": str(int(me["process_start"]) - 1)}))
    with RunLock(tmp_path) as lock:
        assert json.loads(lock.path.read_text())["process_start"] == me["process_start"]
    assert not (tmp_path / LOCK_NAME).exists()


def test_taking_the_lock_removes_temporary_files_of_killed_runs_but_not_another_runs(tmp_path):
    code = (
        "import os, sys\n"
        "from depthscope.output import files\n"
        "def die(*a, **k):\n    os._exit(9)\n"
        "files.os.replace = die\n"  # killed between write and rename
        f"files.write_atomic({str(tmp_path / 'scene' / 'cloud.ply')!r}, b'x' * 1000)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    left = list((tmp_path / "scene").glob(".cloud.ply.*.tmp"))
    assert len(left) == 1
    busy = tmp_path / "other_run"
    busy.mkdir()
    (busy / LOCK_NAME).write_text("somewhere-else 1")
    (busy / ".x.npy.123.tmp").write_bytes(b"being written")
    with RunLock(tmp_path):
        assert not left[0].exists()
        assert (busy / ".x.npy.123.tmp").exists()  # another run's folder: its own lock cleans it
