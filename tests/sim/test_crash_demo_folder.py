"""`hilt demo` replaces its folder by renames: a run killed while it replaces the
folder never leaves it without its marker, so the next run still takes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hilt.sim.demo import MARKER, MIN_EVENTS, STEPS, demo_config, run_demo

INIT_ONLY = STEPS[:1]


def _quiet(_: str) -> None:
    return None


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir()
                  if p.name.startswith(f".{folder.name}."))


def test_a_demo_killed_while_it_replaces_its_folder_does_not_block_the_next(
        tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    run_demo(folder, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    (folder / "datasets").mkdir()
    (folder / "datasets" / "records.jsonl").write_text("{}\n")
    # SIGKILL as soon as the earlier folder's marker has been removed
    script = f"""
        import os, signal
        from pathlib import Path
        from hilt.sim.demo import MARKER, MIN_EVENTS, STEPS, demo_config, run_demo
        real_unlink = os.unlink
        def unlink(path, *a, **k):
            real_unlink(path, *a, **k)
            if os.path.basename(str(path)) == MARKER:
                os.kill(os.getpid(), signal.SIGKILL)
        os.unlink = unlink
        run_demo(Path({str(folder)!r}), demo_config(MIN_EVENTS), echo=lambda _: None,
                 steps=STEPS[:1])
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (folder / MARKER).exists()
    assert not (folder / "datasets").exists()  # no file of the earlier run beside it
    run_demo(folder, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    assert (folder / MARKER).exists() and (folder / "hilt.db").exists()
    assert _leftovers(folder) == []


def test_an_error_while_the_new_folder_is_moved_in_keeps_the_earlier_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "demo"
    run_demo(folder, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if Path(target) == folder.resolve() and not (self / "hilt.db").exists():
            raise OSError(16, "Device or resource busy")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(Exception, match="busy") as err:
        run_demo(folder, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    assert getattr(err.value, "field", None) == "--workdir"
    assert (folder / MARKER).exists() and (folder / "hilt.db").exists()
    assert _leftovers(folder) == []
