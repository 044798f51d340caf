"""The temporary file of a single-file output carries its process's id and is locked
while written, so that the next write of the same output removes what a killed
process left, and never the temporary of a process that is still writing."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilt.data.versions import write_marker
from hilt.events.ingest import ingest_file
from hilt.ops.backup import backup, verify_file
from hilt.quality.csv_io import write_csv_atomic, write_text_atomic
from hilt.staging import PrivateFile, private_name, sweep_stale_files
from hilt.store.db import make_engine, migrate
from tests.train.test_crash_model_folder import _dead_pid


def _host_and_random() -> tuple[str, str]:
    _, host, rand = private_name("").split("-")
    return host, rand


def _stale(folder: Path, target: str, suffix: str, pid: int | None = None) -> Path:
    """A temporary of ``target`` named as a process that is gone names it."""
    host, rand = _host_and_random()
    path = folder / f".{target}.{pid or _dead_pid()}-{host}-{rand}{suffix}"
    path.write_text("half written")
    return path


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'hilt.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url


def test_only_the_temporaries_of_processes_that_are_gone_are_swept(tmp_path: Path) -> None:
    host, rand = _host_and_random()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = None
    try:
        names = {
            "dead": f".out.csv.{_dead_pid()}-{host}-{rand}.tmp",
            "live": f".out.csv.{sleeper.pid}-{host}-{rand}.tmp",
            "other-host": f".out.csv.{_dead_pid()}-00000000-{rand}.tmp",
            "random-name": ".out.csv.k2j3h4xx.tmp",
            "other-target": f".out.csv.bak.{_dead_pid()}-{host}-{rand}.tmp",
            "other-suffix": f".out.csv.{_dead_pid()}-{host}-{rand}.partial",
            "held": f".out.csv.{_dead_pid()}-{host}-{'0' * 8}.tmp",
        }
        for name in names.values():
            (tmp_path / name).write_text("x")
        folder = tmp_path / f".out.csv.{_dead_pid()}-{host}-{'1' * 8}.tmp"
        folder.mkdir()  # a folder of that name is no temporary file
        link = tmp_path / f".out.csv.{_dead_pid()}-{host}-{'2' * 8}.tmp"
        link.symlink_to(tmp_path / names["random-name"])
        # a live process (in another pid namespace, say) holds this one's lock
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import fcntl, os, time
                fd = os.open({str(tmp_path / names['held'])!r}, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_EX)
                print("held", flush=True)
                time.sleep(60)
            """)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        removed = sweep_stale_files(tmp_path, "out.csv", ".tmp")
    finally:
        sleeper.kill()
        if holder is not None:
            holder.kill()
    assert removed == [tmp_path / names["dead"]]
    left = {p.name for p in tmp_path.iterdir()}
    assert left == set(names.values()) - {names["dead"]} | {folder.name, link.name}


def test_this_processes_temporary_is_kept_and_one_of_an_earlier_process_with_its_id_is_not(
        tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    earlier = _stale(tmp_path, "out.csv", ".tmp", pid=os.getpid())
    with PrivateFile(target, ".tmp") as temporary:
        assert not earlier.exists()  # swept: none of this process's temporaries
        assert temporary.path.name.startswith(f".out.csv.{os.getpid()}-")
        assert sweep_stale_files(tmp_path, "out.csv", ".tmp") == []
        assert temporary.path.exists()
    assert _hidden(tmp_path) == []


def test_a_temporary_is_locked_while_it_is_written(tmp_path: Path) -> None:
    probe = textwrap.dedent("""
        import fcntl, os, sys
        fd = os.open(sys.argv[1], os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("held")
        else:
            print("free")
    """)

    def lock_of(path: Path) -> str:
        return subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True,
                              text=True, check=True, timeout=60).stdout.strip()

    with PrivateFile(tmp_path / "out.csv", ".tmp") as temporary:
        with temporary.text_writer() as stream:
            stream.write("a,b\n")
        assert lock_of(temporary.path) == "held"  # closing the stream keeps the lock
        assert oct(temporary.path.stat().st_mode & 0o777) == oct(0o600)
        kept = tmp_path / "kept"
        os.link(temporary.path, kept)
    assert lock_of(kept) == "free" and not temporary.path.exists()


@pytest.mark.parametrize("write", ["csv", "text", "marker"])
def test_each_write_sweeps_its_own_targets_stale_temporaries(tmp_path: Path,
                                                             write: str) -> None:
    target = tmp_path / ("REVOKED.json" if write == "marker" else "labels.csv")
    stale = _stale(tmp_path, target.name, ".tmp")
    random_name = tmp_path / f".{target.name}.k2j3h4xx.tmp"
    random_name.write_text("not ours to judge")
    other = _stale(tmp_path, "other.csv", ".tmp")
    old = os.umask(0o027)
    try:
        if write == "csv":
            write_csv_atomic(target, ["item", "label"], [["i1", "x"]])
        elif write == "text":
            write_text_atomic(target, "{}\n")
        else:
            write_marker(target, {"revoked": True})
    finally:
        os.umask(old)
    assert not stale.exists()
    assert random_name.exists() and other.exists()  # another name, another target
    assert _hidden(tmp_path) == sorted([random_name.name, other.name])
    # the modes a plain open() gives (the marker is always world-readable)
    assert target.stat().st_mode & 0o777 == (0o644 if write == "marker" else 0o640)


def test_a_backup_sweeps_the_partial_copies_and_journals_of_killed_backups(
        tmp_path: Path, sqlite_url: str) -> None:
    out = tmp_path / "bk.db"
    stale = _stale(tmp_path, out.name, ".partial")
    journal = Path(f"{stale}-journal")
    journal.write_text("journal")
    random_name = tmp_path / ".bk.db.k2j3h4xx.partial"
    random_name.write_text("an older hilt's")
    old = os.umask(0o027)
    try:
        result = backup(sqlite_url, out)
    finally:
        os.umask(old)
    assert result["audit"]["ok"] and verify_file(out)["integrity"] == "ok"
    assert not stale.exists() and not journal.exists() and random_name.exists()
    assert _hidden(tmp_path) == [random_name.name]
    assert out.stat().st_mode & 0o777 == 0o640


def _events_with_a_bad_line(path: Path) -> Path:
    good = {"interaction": {"prompt": "p"}, "responses": [{"text": "a"}],
            "context": {"consent": ["review"], "subject_id": "s1", "model_version": "m1"}}
    path.write_text(json.dumps(good) + "\n{not json\n")
    return path


def test_an_ingest_sweeps_the_rejects_temporaries_of_killed_runs(
        tmp_path: Path, sqlite_url: str) -> None:
    events = _events_with_a_bad_line(tmp_path / "ev.jsonl")
    stale = _stale(tmp_path, "ev.jsonl.rejects.jsonl", ".tmp")
    engine = make_engine(sqlite_url)
    try:
        result = ingest_file(engine, events, skip_invalid=True)
    finally:
        engine.dispose()
    assert (result.new, result.rejected) == (1, 1)
    assert not stale.exists() and _hidden(tmp_path) == []
    assert len((tmp_path / "ev.jsonl.rejects.jsonl").read_text().splitlines()) == 1


def _killed(script: str, cwd: Path) -> None:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=cwd,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr


def test_a_csv_write_killed_midway_leaves_a_temporary_the_next_write_removes(
        tmp_path: Path) -> None:
    target = tmp_path / "labels.csv"
    # SIGKILL once half the rows are written
    _killed(f"""
        import os, signal
        from hilt.quality.csv_io import write_csv_atomic
        def rows():
            for i in range(10_000):
                if i == 5_000:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield [f"i{{i}}", "x"]
        write_csv_atomic({str(target)!r}, ["item", "label"], rows())
    """, tmp_path)
    left = _hidden(tmp_path)
    assert len(left) == 1 and left[0].startswith(".labels.csv.") and left[0].endswith(".tmp")
    assert not target.exists()
    write_csv_atomic(target, ["item", "label"], [["i1", "x"]])
    assert target.read_text() == "item,label\ni1,x\n"
    assert _hidden(tmp_path) == []


def test_a_backup_killed_midway_leaves_a_copy_the_next_backup_removes(
        tmp_path: Path, sqlite_url: str) -> None:
    out = tmp_path / "bk.db"
    _killed(f"""
        import os, signal
        from hilt.ops import backup as backup_module
        real_copy = backup_module._copy
        def copy_then_die(source, target, **kw):
            real_copy(source, target, **kw)
            os.kill(os.getpid(), signal.SIGKILL)
        backup_module._copy = copy_then_die
        backup_module.backup({sqlite_url!r}, {str(out)!r})
    """, tmp_path)
    left = _hidden(tmp_path)
    assert any(name.endswith(".partial") for name in left) and not out.exists()
    assert all(name.startswith(".bk.db.") for name in left)
    assert backup(sqlite_url, out)["audit"]["ok"]
    assert _hidden(tmp_path) == []


def test_a_write_never_removes_the_temporary_of_a_write_in_progress(tmp_path: Path) -> None:
    target = tmp_path / "labels.csv"
    ready = tmp_path / "writing"
    # another process is writing the same target when this one writes it
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from hilt.staging import PrivateFile
        with PrivateFile(Path({str(target)!r}), ".tmp") as temporary:
            with temporary.text_writer() as stream:
                stream.write("item,label\\n")
            Path({str(ready)!r}).write_text(str(temporary.path))
            time.sleep(60)
    """)], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(1200):
            if ready.exists() or writer.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), writer.stderr.read() if writer.stderr else ""
        theirs = Path(ready.read_text())
        write_csv_atomic(target, ["item", "label"], [["i1", "x"]])
        assert theirs.exists() and target.read_text() == "item,label\ni1,x\n"
        fd = os.open(theirs, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        writer.kill()
        writer.wait()
    # once its process is gone, the next write removes it
    write_csv_atomic(target, ["item", "label"], [["i2", "y"]])
    assert not theirs.exists() and _hidden(tmp_path) == []
