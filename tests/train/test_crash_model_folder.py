"""A model folder is replaced whole, whatever interrupts the run: an error or SIGKILL
inside the replacement, a failing registration, SIGTERM (as `hilt jobs cancel` sends);
and what killed runs leave beside it is removed by the next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hilt.train import manifest
from hilt.train.manifest import (
    NotRegistered,
    plain_folder_mode,
    private_name,
    read_manifest,
    staged_folder,
    sweep_stale,
)


def _model(path: Path, seed: int, files: int = 3) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").write_text(json.dumps({"kind": "classifier", "seed": seed}))
    for i in range(files):
        (path / f"part-{i}.bin").write_text(f"{seed}")
    return path


def _whole(path: Path) -> int:
    """The seed of the model in ``path``, after checking every file is of that model."""
    seed = read_manifest(path)["seed"]
    assert {p.read_text() for p in path.glob("part-*.bin")} == {str(seed)}
    return int(seed)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".clf-"))


def _run(script: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


def _killed_after_setting_aside(out: Path, body: str, cwd: Path) -> None:
    """Run ``body`` (Python, with ``out`` bound to the folder) in a child process that is
    killed with SIGKILL right after ``out`` is renamed aside, between a replacement's two
    renames."""
    preamble = f"""
        import json, os, signal
        from pathlib import Path
        out = Path({str(out)!r})
        real_rename = Path.rename
        def rename(self, target):
            moved = real_rename(self, target)
            if self == out:
                os.kill(os.getpid(), signal.SIGKILL)
            return moved
        Path.rename = rename
    """
    result = _run(textwrap.dedent(preamble) + textwrap.dedent(body), cwd)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not out.exists()


def test_an_error_while_the_new_model_is_moved_in_puts_the_old_one_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _model(tmp_path / "m", seed=1)
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if Path(target) == out and self.name.startswith(".clf-") \
                and (self / "manifest.json").exists() and _whole(self) == 2:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="No space"), \
            staged_folder(out, ".clf-", "classifier") as work:
        _model(work, seed=2)
    assert _whole(out) == 1
    assert _leftovers(tmp_path) == []


def test_a_run_killed_while_the_old_model_is_removed_leaves_the_new_one_whole(
        tmp_path: Path) -> None:
    out = _model(tmp_path / "m", seed=1, files=50)
    # SIGKILL as soon as the first file of the old model is removed
    result = _run(f"""
        import os, signal, json
        from pathlib import Path
        from hilt.train.manifest import staged_folder
        real_unlink = os.unlink
        def unlink(path, *a, **k):
            real_unlink(path, *a, **k)
            if str(path).startswith("part-"):
                os.kill(os.getpid(), signal.SIGKILL)
        os.unlink = unlink
        out = Path({str(out)!r})
        with staged_folder(out, ".clf-", "classifier") as work:
            (work / "manifest.json").write_text(json.dumps({{"kind": "classifier", "seed": 2}}))
            for i in range(50):
                (work / f"part-{{i}}.bin").write_text("2")
    """, tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert _whole(out) == 2
    assert len(list(out.glob("part-*.bin"))) == 50
    left = _leftovers(tmp_path)
    assert len(left) == 1  # the old model, half removed, under the dead process's name
    # the next run into the folder (or beside it) removes it
    with staged_folder(out, ".clf-", "classifier") as work:
        _model(work, seed=3)
    assert _whole(out) == 3 and _leftovers(tmp_path) == []


def test_a_run_killed_between_the_two_renames_keeps_both_models_beside_the_folder(
        tmp_path: Path) -> None:
    out = _model(tmp_path / "m", seed=1)
    # SIGKILL right after the old model is renamed aside
    _killed_after_setting_aside(out, """
        from hilt.train.manifest import staged_folder
        with staged_folder(out, ".clf-", "classifier") as work:
            (work / "manifest.json").write_text(json.dumps({"kind": "classifier", "seed": 2}))
            (work / "part-0.bin").write_text("2")
    """, tmp_path)
    left = [tmp_path / name for name in _leftovers(tmp_path)]
    assert sorted(_whole(p) for p in left) == [1, 2]
    # the next run into the folder puts the old model back first, then sweeps the rest
    with staged_folder(out, ".clf-", "classifier") as work:
        assert _whole(out) == 1 and _leftovers(tmp_path) == [work.name]
        _model(work, seed=3)
    assert _whole(out) == 3 and _leftovers(tmp_path) == []


def test_a_failed_registration_says_the_new_model_is_in_place_unregistered(
        tmp_path: Path) -> None:
    out = _model(tmp_path / "m", seed=1)

    class Registry:
        def check(self, out: Path) -> None:
            return None

        def record(self, out: Path) -> None:
            raise RuntimeError("database is locked")

    with pytest.raises(NotRegistered) as err, \
            staged_folder(out, ".clf-", "classifier", Registry()) as work:
        _model(work, seed=2)
    message = str(err.value)
    assert str(out) in message and "not registered" in message
    assert "database is locked" in message and err.value.exit_code == 1
    assert _whole(out) == 2 and _leftovers(tmp_path) == []


def test_a_model_folder_gets_the_mode_of_a_plain_folder(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with staged_folder(tmp_path / "m", ".clf-", "classifier") as work:
            _model(work, seed=1)
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o755
    assert plain_folder_mode() == 0o777 & ~old


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_the_leftovers_of_processes_that_are_gone_are_swept(tmp_path: Path) -> None:
    mine = private_name(".clf-")
    pid, host, rand = mine[len(".clf-"):].split("-")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = None
    try:
        names = {
            "dead": f".clf-{_dead_pid()}-{host}-{rand}",
            "dead-rm": f".rm-{_dead_pid()}-{host}-{rand}",
            "live": f".clf-{sleeper.pid}-{host}-{rand}",
            "other-host": f".clf-{_dead_pid()}-00000000-{rand}",
            "unnamed": ".clf-k2j3h4xx",
            "not-staging": f".data-{_dead_pid()}-{host}-{rand}",
            "held": f".sft-{_dead_pid()}-{host}-{rand}",
        }
        for name in names.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / "weights.bin").write_text("x")
        # a live process (in another pid namespace, say) holds this one's lock
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import fcntl, os, sys, time
                fd = os.open({str(tmp_path / names['held'])!r}, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_EX)
                print("held", flush=True)
                time.sleep(60)
            """)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        removed = sweep_stale(tmp_path, manifest.STAGING_PREFIXES)
    finally:
        sleeper.kill()
        if holder is not None:
            holder.kill()
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["dead-rm"]])
    left = {p.name for p in tmp_path.iterdir()}
    assert left == set(names.values()) - {names["dead"], names["dead-rm"]}


def test_this_processes_own_staging_folder_is_not_swept(tmp_path: Path) -> None:
    with staged_folder(tmp_path / "m", ".clf-", "classifier") as work:
        assert sweep_stale(tmp_path, manifest.STAGING_PREFIXES) == []
        assert work.exists()
        _model(work, seed=1)
    assert _whole(tmp_path / "m") == 1


def test_sigterm_removes_the_staging_folder_and_keeps_the_old_model(tmp_path: Path) -> None:
    out = _model(tmp_path / "m", seed=1)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"t": f"text {i}", "y": "ab"[i % 2]}) + "\n"
                            for i in range(10)))
    ready = tmp_path / "training"
    # `hilt train classifier` through the real entry point; the training itself is
    # replaced by a stand-in that writes into the staging folder and then waits
    script = f"""
        import sys, time
        from pathlib import Path
        import hilt.cli.train as cli_train
        import hilt.train.classifier_refresh as refresh
        cli_train._encoder_positions = lambda: 512
        def train_classifier(texts, labels, config, contexts, *, workdir, **kw):
            (workdir / "checkpoint.bin").write_text("partial")
            Path({str(ready)!r}).write_text(str(workdir))
            time.sleep(60)
        refresh.train_classifier = train_classifier
        sys.argv = ["hilt", "train", "classifier", "--data", {str(data)!r},
                    "--text-field", "t", "--label-field", "y", "--out", {str(out)!r},
                    "--no-register", "--db", "sqlite:///{tmp_path / 'none.db'}"]
        from hilt.cli import main
        main()
    """
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), child.communicate()[1] if child.poll() is not None else ""
        staging = Path(ready.read_text())
        assert staging.exists() and staging.name.startswith(".clf-")
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # stopped by SIGTERM, as without the clean-up, but only after it
    assert child.returncode == -signal.SIGTERM, stderr
    assert "error: terminated (SIGTERM)" in stderr
    assert not staging.exists() and _leftovers(tmp_path) == []
    assert _whole(out) == 1
