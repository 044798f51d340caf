"""``restore`` re-hashes every event: a backup whose event text was damaged is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.ops.backup import backup, restore, verify_file

from .climain import run_main
from .helpers import live_sqlite


def _flip_byte(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0
    data[at] = ord("X")
    path.write_bytes(bytes(data))


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    out = tmp_path / "b.db"
    backup(live_sqlite(str(tmp_path / "live.db")), out)
    assert verify_file(out)["events_bad"] == 0
    # One byte inside one event's prompt: SQLite's structure and the audit chain are intact.
    _flip_byte(out, b"question 3 about")
    con = sqlite3.connect(out)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    return out


def test_verify_counts_the_damaged_event(damaged: Path) -> None:
    info = verify_file(damaged)
    assert info["audit"]["ok"]
    assert (info["events_checked"], info["events_bad"], info["first_bad_event"]) == \
        (5, 1, "ev00003")


def test_restore_refuses_it_and_leaves_the_target_untouched(damaged: Path,
                                                             tmp_path: Path) -> None:
    target = tmp_path / "live_copy.db"
    target.write_bytes(b"the database in use")
    with pytest.raises(InputError, match="ev00003") as caught:
        restore(damaged, f"sqlite:///{target}", force=True)
    assert caught.value.file == str(damaged)
    assert target.read_bytes() == b"the database in use"
    fresh = tmp_path / "fresh.db"
    with pytest.raises(InputError, match="content hash"):
        restore(damaged, f"sqlite:///{fresh}")
    assert not fresh.exists()


def test_cli_restore_exits_2_naming_the_event(damaged: Path, tmp_path: Path) -> None:
    code, output = run_main("restore", str(damaged), "--db", f"sqlite:///{tmp_path / 'r.db'}")
    assert code == 2, output
    assert output.startswith("error: ") and "ev00003" in output
    assert not (tmp_path / "r.db").exists()


def test_text_no_longer_utf8_counts_as_damage(tmp_path: Path) -> None:
    out = tmp_path / "b.db"
    backup(live_sqlite(str(tmp_path / "live.db")), out)
    data = bytearray(out.read_bytes())
    at = data.find(b"question 2 about")
    data[at] = 0xFF  # not UTF-8 any more
    out.write_bytes(bytes(data))
    info = verify_file(out)
    assert (info["events_bad"], info["first_bad_event"]) == (1, "ev00002")


def test_erased_events_are_not_counted(tmp_path: Path) -> None:
    url = live_sqlite(str(tmp_path / "live.db"))
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    # What erasure leaves: the payload replaced, the hash of the original kept.
    con.execute("UPDATE events SET payload = '{\"erased\": true}', "
                "erased_at = '2026-01-01 00:00:00.000000' WHERE id = 'ev00001'")
    con.commit()
    con.close()
    out = tmp_path / "b.db"
    info = backup(url, out)
    assert (info["events_checked"], info["events_bad"]) == (4, 0)
