"""Parsed rubric specs are cached per database: two databases with different versions 1
of the same rubric id, open in one process, each check answers against their own."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from hilt.review.reviews import cached_spec, engine_spec, engine_spec_json
from hilt.review.rubric_spec import RubricSpec
from hilt.review.rubrics import publish_rubric
from hilt.store.db import make_engine, migrate, transaction


def _database(path: Path, options: list[str]) -> Engine:
    engine = make_engine(f"sqlite:///{path}", create=True)
    migrate(engine)
    with transaction(engine) as s:
        publish_rubric(s, RubricSpec.model_validate({
            "id": "harm", "title": "harm", "questions": [
                {"id": "verdict", "kind": "single_choice", "prompt": "?",
                 "options": options}]}), actor="lead")
    return engine


def test_each_database_sees_its_own_rubric_version(tmp_path: Path) -> None:
    first = _database(tmp_path / "a.db", ["safe", "harmful"])
    second = _database(tmp_path / "b.db", ["ok", "bad", "unsure"])
    with transaction(first) as s:  # fills the cache from the first database
        assert [o.value for o in cached_spec(s, "harm", 1).questions[0].options] == \
            ["safe", "harmful"]
    with transaction(second) as s:
        assert [o.value for o in cached_spec(s, "harm", 1).questions[0].options] == \
            ["ok", "bad", "unsure"]
    assert len(engine_spec(second, "harm", 1).questions[0].options) == 3
    assert len(engine_spec_json(first, "harm", 1)["questions"][0]["options"]) == 2
