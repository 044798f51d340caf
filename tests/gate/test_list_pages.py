"""``hilt gate list`` a page at a time: newest first, decisions stored in one instant by
hash; when more follow, stderr says ``more: --after CURSOR``, and following it to the end
lists every decision once; a cursor it did not give exits 2 naming ``--after``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store.db import make_engine, transaction
from hilt.store.tables.gate import GateDecisionRow
from tests.conftest import migrated_sqlite
from tests.ops.climain import run_hilt

T0 = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = migrated_sqlite(tmp_path / "h.db")
    engine = make_engine(url)
    with transaction(engine) as s:
        # three instants, a microsecond apart for two of them, several decisions each
        for k, when in enumerate([T0, T0 + timedelta(microseconds=1), T0 + timedelta(1)]):
            for j in range(3):
                digest = f"{k}{j}".ljust(64, "a")
                s.add(GateDecisionRow(hash=digest, created_at=when, outcome="pass",
                                      policy_id="p", policy_version="1", stored_by="ci",
                                      record={"outcome": "pass"}))
    engine.dispose()
    return url


def _page(db: str, *args: str) -> tuple[list[str], str | None]:
    result = CliRunner().invoke(app, ["gate", "list", "--db", db, *args])
    assert result.exit_code == 0, result.output
    more = [line for line in result.stderr.splitlines() if line.startswith("more: ")]
    return ([d["hash"][:2] for d in json.loads(result.stdout)],
            more[0].removeprefix("more: --after ") if more else None)


def test_pages_followed_to_the_end_list_every_decision_once_newest_first(db: str) -> None:
    whole, more = _page(db, "--limit", "50")
    assert more is None
    assert whole == ["20", "21", "22", "10", "11", "12", "00", "01", "02"]
    for limit in (1, 2, 4):
        seen: list[str] = []
        args = ["--limit", str(limit)]
        while True:
            page, more = _page(db, *args)
            seen += page
            if more is None:
                break
            assert len(page) == limit
            args = ["--limit", str(limit), "--after", more]
        assert seen == whole, limit


def test_a_cursor_it_did_not_give_is_refused_naming_after(db: str) -> None:
    result = run_hilt(["gate", "list", "--db", db, "--after", "nonsense"])
    assert result.returncode == 2
    assert "field '--after': not a cursor from an earlier page" in result.stderr
