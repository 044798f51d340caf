"""A check's output folder (report.json, report.html, decision.json) switches whole:
a run killed or failing while it replaces the folder, or two runs writing it at once,
never leave report.json of one run beside decision.json of another."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from hilt.evals.report import write_outputs_atomically
from hilt.train.manifest import private_name

NAMES = ("report.json", "report.html", "decision.json")


def _outputs(run: str) -> dict[str, str]:
    return {"report.json": json.dumps({"decision_hash": run}) + "\n",
            "report.html": f"<p>{run}</p>\n", "decision.json": json.dumps({"hash": run}) + "\n"}


def _runs_in(out: Path) -> set[str]:
    """Which runs the folder's three files come from (one, for a whole folder)."""
    return {json.loads((out / "report.json").read_text())["decision_hash"],
            (out / "report.html").read_text()[3:-5],
            json.loads((out / "decision.json").read_text())["hash"]}


def _leftovers(parent: Path, out: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_a_run_killed_while_it_replaces_the_folder_leaves_one_runs_outputs(
        tmp_path: Path) -> None:
    out = tmp_path / "ckm"
    write_outputs_atomically(out, _outputs("first"))
    # SIGKILL right after the first rename that puts anything at or under the folder
    script = f"""
        import os, signal
        from pathlib import Path
        from hilt.evals.report import write_outputs_atomically
        out = {str(out)!r}
        def killing(real):
            def call(src, dst, *a, **k):
                result = real(src, dst, *a, **k)
                if str(dst) == out or str(dst).startswith(out + "/"):
                    os.kill(os.getpid(), signal.SIGKILL)
                return result
            return call
        os.replace, os.rename = killing(os.replace), killing(os.rename)
        Path.rename, Path.replace = killing(Path.rename), killing(Path.replace)
        write_outputs_atomically(out, {_outputs("second")!r})
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert _runs_in(out) in ({"first"}, {"second"})
    # the next run removes what the killed one left beside the folder
    write_outputs_atomically(out, _outputs("third"))
    assert _runs_in(out) == {"third"} and _leftovers(tmp_path, out) == []


def test_a_failure_moving_the_new_folder_in_keeps_the_old_outputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ckm"
    write_outputs_atomically(out, _outputs("first"))
    real_rename = Path.rename

    def rename(self: Path, target: Any) -> Path:
        if Path(target) == out and (self / "decision.json").exists() \
                and _runs_in(self) == {"second"}:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        write_outputs_atomically(out, _outputs("second"))
    assert _runs_in(out) == {"first"} and _leftovers(tmp_path, out) == []


def test_two_runs_writing_one_folder_at_once_leave_one_runs_outputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ckm"
    write_outputs_atomically(out, _outputs("zero"))
    first_paused, second_done = threading.Event(), threading.Event()
    first: dict[str, Any] = {}

    def pausing(real: Any) -> Any:
        def call(src: Any, dst: Any, *a: Any, **k: Any) -> Any:
            result = real(src, dst, *a, **k)
            inside = str(dst) == str(out) or str(dst).startswith(f"{out}/")
            if inside and threading.current_thread().name == "first" \
                    and not first_paused.is_set():
                # the first run stops half-way through putting its outputs in place
                # while the second runs from start to end (or waits for its turn)
                first_paused.set()
                second_done.wait(timeout=3)
            return result
        return call

    for owner, name in ((os, "replace"), (os, "rename"), (Path, "rename"), (Path, "replace")):
        monkeypatch.setattr(owner, name, pausing(getattr(owner, name)))

    def run(name: str, done: threading.Event | None = None) -> None:
        try:
            write_outputs_atomically(out, _outputs(name))
        except BaseException as exc:  # pragma: no cover - reported below
            first[name] = exc
        finally:
            if done is not None:
                done.set()

    a = threading.Thread(target=run, args=("first",), name="first")
    a.start()
    assert first_paused.wait(timeout=30)
    b = threading.Thread(target=run, args=("second", second_done), name="second")
    b.start()
    a.join(timeout=60)
    b.join(timeout=60)
    assert not first
    assert _runs_in(out) in ({"first"}, {"second"})
    assert _leftovers(tmp_path, out) == []


def test_files_the_run_does_not_write_stay_in_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "ckm"
    (out / "inputs").mkdir(parents=True)
    (out / "inputs" / "suite.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("kept")
    (out / "link").symlink_to("notes.txt")
    os.chmod(out, 0o750)
    write_outputs_atomically(out, _outputs("first"))
    assert _runs_in(out) == {"first"}
    assert (out / "inputs" / "suite.jsonl").read_text() == "{}\n"
    assert (out / "notes.txt").read_text() == "kept"
    assert (out / "link").is_symlink() and (out / "link").read_text() == "kept"
    assert out.stat().st_mode & 0o777 == 0o750  # a replaced folder keeps its mode


def test_a_symbolic_link_to_the_folder_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write_outputs_atomically(real, _outputs("first"))
    link = tmp_path / "ckm"
    link.symlink_to(real)
    write_outputs_atomically(link, _outputs("second"))
    assert link.is_symlink() and _runs_in(real) == {"second"}


def test_staging_folders_of_killed_runs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "ckm"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    mine = private_name(f".{out.name}.")
    _, host, rand = mine[len(f".{out.name}."):].split("-")
    stale = tmp_path / f".{out.name}.{child.pid}-{host}-{rand}"
    stale.mkdir()
    (stale / "report.json").write_text("{}")
    write_outputs_atomically(out, _outputs("first"))
    assert not stale.exists() and _leftovers(tmp_path, out) == []
