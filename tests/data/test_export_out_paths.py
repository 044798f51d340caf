"""`--out` of an export must be a path where nothing is: a symbolic link (dangling or a
loop) or a file on the way is refused as bad input naming the field, with nothing
written and no export recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from data_factories import garden_event, make_label
from sqlalchemy.engine import Engine

from hilt.data.build import build_version
from hilt.data.export import export_version
from hilt.data.spec import parse_spec
from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction
from hilt.store.tables.datasets import DatasetExportRow

SPEC = {"name": "prefs", "kind": "preference", "split": {"validation_fraction": 0.0}}


@pytest.fixture
def version_id(sqlite_engine: Engine, tmp_path: Path) -> str:
    ingest_events(sqlite_engine, [garden_event(i, "amy", marked="", mark="") for i in range(3)],
                  actor="test")
    labels = [make_label(f"ev{i}", {"chosen": 0, "rejected": 1}) for i in range(3)]
    with transaction(sqlite_engine) as session:
        return build_version(session, parse_spec(SPEC), actor="tester",
                             label_source=lambda _s, **_k: labels,
                             directory=tmp_path / "ds").version_id


def _refusal(engine: Engine, version_id: str, out: Path) -> str:
    with pytest.raises(InputError) as refused, transaction(engine) as session:
        export_version(session, version_id, out)
    assert refused.value.field == "out"
    return str(refused.value)


def _no_exports(engine: Engine) -> bool:
    with transaction(engine) as session:
        return session.execute(sa.select(sa.func.count()).select_from(
            DatasetExportRow)).scalar_one() == 0


@pytest.mark.parametrize("make, out_of, says", [
    (lambda d: (d / "loop").symlink_to(d / "loop"), lambda d: d / "loop",
     "already exists (a symbolic link)"),
    (lambda d: (d / "loop").symlink_to(d / "loop"), lambda d: d / "loop" / "sub",
     "cannot resolve"),
    (lambda d: (d / "file").write_text("x"), lambda d: d / "file" / "sub",
     "cannot create the folder"),
], ids=["symlink-loop", "under-a-symlink-loop", "under-a-file"])
def test_an_out_path_that_cannot_be_made_is_refused_naming_the_field(
        sqlite_engine: Engine, version_id: str, tmp_path: Path, make: Callable[[Path], object],
        out_of: Callable[[Path], Path], says: str) -> None:
    place = tmp_path / "place"
    place.mkdir()
    make(place)
    assert says in _refusal(sqlite_engine, version_id, out_of(place))
    assert _no_exports(sqlite_engine)


def test_a_dangling_symlink_at_out_is_refused_not_followed(
        sqlite_engine: Engine, version_id: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "deep"
    out = tmp_path / "link"
    out.symlink_to(elsewhere)
    assert "already exists (a symbolic link)" in _refusal(sqlite_engine, version_id, out)
    assert not (tmp_path / "elsewhere").exists()  # nothing written where it points
    assert _no_exports(sqlite_engine)
