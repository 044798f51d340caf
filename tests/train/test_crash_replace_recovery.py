"""A run killed between the two renames that replace an output folder leaves no folder
at ``--out``: the next run into that folder puts the old one back before anything else,
then sweeps the rest; nothing else ever takes the old folder for a leftover."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.evals.report import write_outputs_atomically
from hilt.train.manifest import (
    STAGING_PREFIXES,
    check_out_folder,
    restore_replaced,
    staged_folder,
    sweep_stale,
)
from tests.train.test_crash_model_folder import (
    _killed_after_setting_aside,
    _leftovers,
    _model,
    _run,
    _whole,
)


def _killed_between_the_renames(out: Path, seed: int) -> None:
    """A run into ``out`` (a model folder) that writes the model ``seed`` and is killed
    right after the old model is renamed aside."""
    _killed_after_setting_aside(out, f"""
        from hilt.train.manifest import staged_folder
        with staged_folder(out, ".clf-", "classifier") as work:
            (work / "manifest.json").write_text(
                json.dumps({{"kind": "classifier", "seed": {seed}}}))
            for i in range(3):
                (work / f"part-{{i}}.bin").write_text("{seed}")
    """, out.parent)


def test_the_next_run_puts_the_old_model_back_first_and_keeps_it_when_it_fails(
        tmp_path: Path) -> None:
    out = _model(tmp_path / "m", seed=1)
    _killed_between_the_renames(out, seed=2)
    left = [tmp_path / name for name in _leftovers(tmp_path)]
    assert sorted(_whole(p) for p in left) == [1, 2]
    assert sum(".aside-" in p.name for p in left) == 1  # the old model says it is one
    with pytest.raises(RuntimeError, match="out of memory"), \
            staged_folder(out, ".clf-", "classifier") as work:
        # the old model is back before the run does its work; the new one is swept
        assert _whole(out) == 1
        assert _leftovers(tmp_path) == [work.name]
        raise RuntimeError("out of memory")
    assert _whole(out) == 1 and _leftovers(tmp_path) == []


def test_the_check_every_training_command_makes_first_puts_the_old_model_back(
        tmp_path: Path) -> None:
    out = _model(tmp_path / "m", seed=1)
    _killed_between_the_renames(out, seed=2)
    # the folder is checked as the model it holds: a reward run may not replace it
    with pytest.raises(InputError, match="holds a classifier model"):
        check_out_folder(out, "reward")
    assert _whole(out) == 1


def test_a_run_into_another_folder_keeps_the_old_model_of_a_missing_one(
        tmp_path: Path) -> None:
    first, second = _model(tmp_path / "m1", seed=10), _model(tmp_path / "m2", seed=20)
    _killed_between_the_renames(first, seed=11)
    _killed_between_the_renames(second, seed=21)
    # m2's run finds m2's old model, not m1's, and leaves m1's where it is
    with staged_folder(second, ".clf-", "classifier") as work:
        assert _whole(second) == 20
        _model(work, seed=22)
    assert _whole(second) == 22 and not first.exists()
    # m1's new model is swept (nothing tells whose it was); its old one is kept
    left = [tmp_path / name for name in _leftovers(tmp_path)]
    assert [_whole(p) for p in left] == [10]
    assert sweep_stale(tmp_path, STAGING_PREFIXES) == []
    assert restore_replaced(first, STAGING_PREFIXES) == left[0]
    assert _whole(first) == 10 and _leftovers(tmp_path) == []


def test_an_old_model_that_was_being_removed_is_never_put_back(tmp_path: Path) -> None:
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
        with staged_folder(Path({str(out)!r}), ".clf-", "classifier") as work:
            (work / "manifest.json").write_text(json.dumps({{"kind": "classifier", "seed": 2}}))
            (work / "part-0.bin").write_text("2")
    """, tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert _whole(out) == 2
    half_removed = _leftovers(tmp_path)
    assert len(half_removed) == 1 and ".aside-" not in half_removed[0]
    shutil.rmtree(out)  # the user removes the model folder
    assert restore_replaced(out, STAGING_PREFIXES) is None
    assert not out.exists()


def test_an_old_folder_set_aside_by_a_live_process_is_never_put_back(
        tmp_path: Path) -> None:
    out = _model(tmp_path / "m", seed=1)
    _killed_between_the_renames(out, seed=2)
    aside = next(tmp_path / n for n in _leftovers(tmp_path) if ".aside-" in n)
    # a live process (in another pid namespace, say) holds the folder's lock
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, time
        fd = os.open({str(aside)!r}, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert restore_replaced(out, STAGING_PREFIXES) is None
        assert not out.exists() and _whole(aside) == 1
    finally:
        holder.kill()
        holder.wait()
    assert restore_replaced(out, STAGING_PREFIXES) == aside and _whole(out) == 1


def test_a_report_folder_set_aside_by_a_killed_run_can_be_put_back(tmp_path: Path) -> None:
    out = tmp_path / "ckm"
    write_outputs_atomically(out, {"report.json": '{"run": "first"}\n'})
    _killed_after_setting_aside(out, """
        from hilt.evals.report import write_outputs_atomically
        write_outputs_atomically(out, {"report.json": '{"run": "second"}\\n'})
    """, tmp_path)
    assert restore_replaced(out, [f".{out.name}."]) is not None
    assert (out / "report.json").read_text() == '{"run": "first"}\n'
