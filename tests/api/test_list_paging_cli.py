"""The list commands that match the paged endpoints take ``--after`` and, when more
rows follow, say so on stderr (``more: --after CURSOR``); stdout keeps only the
listing. Followed to the end, the pages hold every row once, in order, with the
filters kept; a cursor hilt did not give exits 2 naming ``--after``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from click.testing import Result
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.store.keyset import NOT_A_CURSOR
from tests.api.paging_rows import (
    Listed,
    seed_alerts,
    seed_deliveries,
    seed_jobs,
    seed_pending,
    seed_reviews,
)
from tests.ops.climain import run_main


@dataclass(frozen=True)
class Command:
    args: list[str]
    id_key: str
    seed: Callable[[Engine], Listed]


COMMANDS = {
    "jobs": Command(["jobs", "list", "--json"], "id", seed_jobs),
    "deliveries": Command(["webhook", "deliveries"], "id", seed_deliveries),
    "alerts": Command(["drift", "alerts"], "id", seed_alerts),
    "adjudications": Command(["adjudicate", "list"], "task_id", seed_pending),
    "reviews": Command(["review", "mine", "--reviewer", "r1"], "review_id",
                       lambda engine: seed_reviews(engine, "r1")),
}


def _run(db_url: str, args: list[str]) -> Result:
    return CliRunner().invoke(app, [*args, "--db", db_url])


def _walk(db_url: str, cmd: Command, extra: list[str], limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: list[str] = []
    while True:
        result = _run(db_url, [*cmd.args, *extra, "--limit", str(limit), *after])
        assert result.exit_code == 0, result.output
        pages.append([row[cmd.id_key] for row in json.loads(result.stdout)])
        if not result.stderr:
            return pages
        assert len(pages[-1]) == limit and len(pages) <= 50
        note, _, cursor = result.stderr.rstrip("\n").partition("more: --after ")
        assert note == "" and cursor, result.stderr
        after = ["--after", cursor]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_pages_followed_to_the_end_hold_every_row_once_in_order(
        engine: Engine, db_url: str, name: str) -> None:
    cmd = COMMANDS[name]
    expected = cmd.seed(engine).ids()
    whole = _run(db_url, [*cmd.args, "--limit", "1000"])
    assert whole.exit_code == 0 and whole.stderr == "", whole.output
    assert [row[cmd.id_key] for row in json.loads(whole.stdout)] == expected
    for limit in (1, 4, len(expected)):
        pages = _walk(db_url, cmd, [], limit)
        assert [i for page in pages for i in page] == expected, limit
        assert all(pages)


@pytest.mark.parametrize(("name", "extra", "only"), [
    ("jobs", ["--status", "failed"], {"status": "failed"}),
    ("deliveries", ["--status", "pending"], {"status": "pending"}),
    ("alerts", ["--monitor", "agreement", "--status", "open"],
     {"monitor": "agreement", "status": "open"}),
])
def test_the_filters_hold_on_every_page(engine: Engine, db_url: str, name: str,
                                        extra: list[str], only: dict[str, str]) -> None:
    cmd = COMMANDS[name]
    expected = cmd.seed(engine).ids(**only)
    assert len(expected) >= 2
    assert [i for page in _walk(db_url, cmd, extra, 1) for i in page] == expected


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_cursor_hilt_did_not_give_exits_2_naming_after(engine: Engine, db_url: str,
                                                         name: str) -> None:
    code, out = run_main(*COMMANDS[name].args, "--after", "nonsense", "--db", db_url)
    assert code == 2
    assert out == f"error: field '--after': {NOT_A_CURSOR}\n"
