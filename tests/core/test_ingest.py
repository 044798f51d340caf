"""Ingest from files and Python: idempotent, all-or-nothing, errors name file/line/field."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.ingest import ingest_events, ingest_file
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar_one()


def sample(i: int, **extra: object) -> dict:
    return {"interaction": {"prompt": f"prompt {i}"}, "responses": [{"text": f"answer {i}"}],
            "context": {"consent": ["review", "train"], "subject_id": f"s{i % 3}",
                        "model_version": "m1"}, **extra}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_jsonl_ingest_is_idempotent(engine: Engine, tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "a.jsonl", [sample(i) for i in range(20)])
    first = ingest_file(engine, f)
    second = ingest_file(engine, f)
    assert (first.received, first.new, first.duplicates) == (20, 20, 0)
    assert (second.received, second.new, second.duplicates) == (20, 0, 20)
    assert count(engine) == 20
    with transaction(engine) as s:
        assert audit.verify(s).ok


def test_csv_and_parquet_map_flat_columns(engine: Engine, tmp_path: Path) -> None:
    csv_path = tmp_path / "a.csv"
    csv_path.write_text(
        "id,prompt,response,consent,model_version,temperature,scores.guardrail,tags\n"
        "c1,hello,hi there,train;review,m2,0.7,0.91,\"a,b\"\n")
    pq_path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": "p1", "prompt": "yo", "response": "hey",
                                          "consent": "train", "seed": 3}]), pq_path)
    assert ingest_file(engine, csv_path).new == 1
    assert ingest_file(engine, pq_path).new == 1
    with transaction(engine) as s:
        row = s.get(EventRow, "c1")
        assert row is not None and row.model_version == "m2"
        assert row.payload["context"]["decoder"]["temperature"] == 0.7
        assert row.payload["scores"] == {"guardrail": 0.91}
        assert row.payload["context"]["tags"] == ["a", "b"]
        assert row.consent_scopes == ",review,train,"
        p1 = s.get(EventRow, "p1")
        assert p1 is not None and p1.payload["context"]["decoder"]["seed"] == 3


def test_bad_line_names_file_line_field_and_writes_nothing(engine: Engine,
                                                            tmp_path: Path) -> None:
    records = [sample(i) for i in range(5)]
    records[3] = {"interaction": {"prompt": "x"}, "context": {"consent": ["nope"]}}
    f = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert (err.value.file, err.value.line, err.value.field) == (str(f), 4, "context.consent[0]")
    assert count(engine) == 0


def test_skip_invalid_writes_good_lines_and_a_rejects_file(engine: Engine,
                                                            tmp_path: Path) -> None:
    f = tmp_path / "mixed.jsonl"
    f.write_text(json.dumps(sample(1)) + "\n{not json\n" + json.dumps(sample(2)) + "\n")
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (2, 1)
    rejects = [json.loads(x) for x in (tmp_path / "mixed.jsonl.rejects.jsonl").read_text()
               .splitlines()]
    assert len(rejects) == 1 and rejects[0]["line"] == 2 and "JSON" in rejects[0]["reason"]


def test_same_id_with_other_content_is_refused(engine: Engine, tmp_path: Path) -> None:
    ingest_events(engine, [sample(1, id="fixed")])
    f = write_jsonl(tmp_path / "c.jsonl", [sample(2), sample(3, id="fixed")])
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert (err.value.line, err.value.field) == (2, "id")
    assert count(engine) == 1
    dup = write_jsonl(tmp_path / "d.jsonl", [sample(5, id="x"), sample(6, id="x")])
    with pytest.raises(InputError, match="repeats line 1"):
        ingest_file(engine, dup)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 30), min_size=1, max_size=25),
       st.lists(st.integers(0, 30), min_size=1, max_size=25))
def test_property_resending_overlapping_batches_never_duplicates(
        engine: Engine, first: list[int], second: list[int]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(EventRow))
    a = ingest_events(engine, [sample(i) for i in first])
    b = ingest_events(engine, [sample(i) for i in second])
    assert a.new == len(set(first))
    assert b.new == len(set(second) - set(first))
    assert count(engine) == len(set(first) | set(second))


def test_bulk_path_stores_datetimes_like_the_orm(engine: Engine) -> None:
    from datetime import UTC, datetime

    ingest_events(engine, [sample(1, created_at="2026-01-02T03:04:05+02:00")])
    with transaction(engine) as s:
        row = s.execute(sa.select(EventRow)).scalar_one()
        assert row.created_at == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
        later = s.execute(sa.select(sa.func.count()).select_from(EventRow).where(
            EventRow.created_at > datetime(2026, 1, 2, 1, 4, 4, tzinfo=UTC))).scalar_one()
        assert later == 1


def test_a_created_at_before_year_1000_reads_back(engine: Engine) -> None:
    from datetime import UTC, datetime

    ingest_events(engine, [sample(1, created_at="0060-06-03T04:26:19Z")])
    with transaction(engine) as s:
        row = s.execute(sa.select(EventRow)).scalar_one()
        assert row.created_at == datetime(60, 6, 3, 4, 26, 19, tzinfo=UTC)


def test_naive_created_at_is_stored_as_utc(engine: Engine) -> None:
    from datetime import UTC, datetime

    ingest_events(engine, [sample(1, created_at="2026-01-02T03:04:05")])
    with transaction(engine) as s:
        row = s.execute(sa.select(EventRow)).scalar_one()
        assert row.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_binary_copy_types_match_the_migrated_table(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    from hilt.events.ingest import BULK_COLUMNS
    from hilt.events.pg_copy import COPY_TYPES
    from tests.conftest import copy_type_names

    types = copy_type_names(engine, "events")
    assert tuple(types[c] for c in BULK_COLUMNS) == COPY_TYPES


def test_ids_stored_meanwhile_fall_back_to_the_idempotent_insert(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest that did not see rows a concurrent ingest stored after its check (here:
    the check is made blind) writes only the others and reports them as duplicates."""
    from hilt.events import ingest

    ingest_events(engine, [sample(i) for i in range(3)])
    monkeypatch.setattr(ingest, "_existing", lambda session, ids: {})
    result = ingest_events(engine, [sample(i) for i in range(5)])
    assert (result.new, result.duplicates) == (2, 3)
    assert count(engine) == 5


def test_concurrent_ingests_of_one_batch_store_it_once(db_url: str) -> None:
    """Two processes' worth of connections send the same batch at once: one stores it,
    the other reports duplicates; neither fails."""
    from concurrent.futures import ThreadPoolExecutor

    from hilt.store.db import make_engine

    engines = [make_engine(db_url) for _ in range(4)]
    batch = [sample(i) for i in range(200)]
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda e: ingest_events(e, batch), engines))
        assert sorted(r.new for r in results) == [0, 0, 0, 200]
        assert count(engines[0]) == 200
    finally:
        for e in engines:
            e.dispose()


def test_a_batch_is_part_of_the_callers_transaction(engine: Engine) -> None:
    """The first statement of the transaction is the batch's write (PostgreSQL: the
    COPY in a savepoint): a caller that fails afterwards leaves nothing stored."""
    from hilt.events.ingest import store_events
    from hilt.events.validate import parse_event

    events = [parse_event(sample(i)) for i in range(5)]
    with pytest.raises(RuntimeError), transaction(engine) as s:
        assert store_events(s, events, actor="t").new == 5
        raise RuntimeError("after the write")
    assert count(engine) == 0
    with transaction(engine) as s:
        assert store_events(s, events, actor="t").new == 5
    assert count(engine) == 5


def test_events_without_ids_get_their_content_ids(engine: Engine) -> None:
    from hilt.events.ingest import store_events
    from hilt.events.model import FeedbackEvent

    events = [FeedbackEvent.model_validate(sample(i)) for i in range(3)]
    with transaction(engine) as s:
        assert store_events(s, events, actor="t").new == 3
    with transaction(engine) as s:
        stored = set(s.execute(sa.select(EventRow.id)).scalars())
    assert stored == {e.with_id().id for e in events}


def test_a_batch_repeating_an_id_is_stored_once_or_refused(engine: Engine) -> None:
    """A repeated id takes the checked path: the same content is stored once, other
    content is refused naming the repeat."""
    same = [sample(1, id="a"), sample(2, id="b"), sample(1, id="a")]
    assert ingest_events(engine, same).new == 2
    other = [sample(3, id="c"), sample(4, id="c")]
    with pytest.raises(InputError) as err:
        ingest_events(engine, other)
    assert err.value.field == "id" and "repeats" in str(err.value)
    assert count(engine) == 2


def test_nul_characters_are_refused_naming_line_and_field(engine: Engine) -> None:
    """PostgreSQL cannot store NUL in text; refused on both backends before any write.
    A text that spells out a backslash and "u0000" is fine."""
    cases = [(sample(1, id="a\x00"), "id"),
             ({**sample(2), "interaction": {"prompt": "x\x00y"}}, "interaction.prompt"),
             ({**sample(3), "responses": [{"text": "ok"}, {"text": "\x00"}]},
              "responses[1].text"),
             ({**sample(4), "context": {"metadata": {"k": ["a", "b\x00"]}}},
              "context.metadata.k[1]")]
    for record, field in cases:
        with pytest.raises(InputError) as err:
            ingest_events(engine, [sample(10), record])
        assert (err.value.line, err.value.field) == (2, field), record
        assert "NUL" in str(err.value)
    assert count(engine) == 0
    spelled = {**sample(5), "interaction": {"prompt": "printf(\"\\u0000\")"}}
    assert ingest_events(engine, [spelled]).new == 1


def test_non_finite_scores_are_refused_with_their_field(engine: Engine, tmp_path: Path) -> None:
    for literal in ("Infinity", "NaN", "1e400"):
        f = tmp_path / f"scores-{literal}.jsonl"
        f.write_text(json.dumps(sample(1)) + "\n" + json.dumps(sample(2))[:-1]
                     + f', "scores": {{"guardrail": {literal}}}}}\n')
        before = count(engine)
        with pytest.raises(InputError) as err:
            ingest_file(engine, f)
        assert (err.value.line, err.value.field) == (2, "scores.guardrail"), str(err.value)
        assert count(engine) == before  # all or nothing
        result = ingest_file(engine, f, skip_invalid=True)
        assert result.rejected == 1
    assert count(engine) == 1  # sample(1), stored once across the three files
    with pytest.raises(InputError):
        ingest_events(engine, [sample(3, id="e3", scores={"guardrail": float("inf")})])


def test_a_line_that_is_not_utf8_is_one_bad_line(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "bytes.jsonl"
    f.write_bytes(json.dumps(sample(1)).encode() + b"\n\xff\xfe{\"a\": 1}\n"
                  + json.dumps(sample(2)).encode() + b"\n")
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert err.value.line == 2 and "UTF-8" in str(err.value) and count(engine) == 0
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (2, 1)


def test_an_unwritable_rejects_path_stores_nothing(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "mixed.jsonl"
    f.write_text(json.dumps(sample(1)) + "\n{not json\n")
    target = tmp_path / "missing-dir" / "r.jsonl"
    with pytest.raises(InputError) as err:
        ingest_file(engine, f, skip_invalid=True, rejects_path=target)
    assert err.value.field == "--rejects" and count(engine) == 0
    assert not list(tmp_path.glob("**/*.tmp"))


def test_csv_response_and_responses_together_are_refused(engine: Engine,
                                                          tmp_path: Path) -> None:
    for header, row in [("prompt,response,responses", 'p1,A,"[{""text"": ""B""}]"'),
                        ("prompt,responses,response", 'p1,"[{""text"": ""B""}]",A')]:
        f = tmp_path / "both.csv"
        f.write_text(header + "\n" + row + "\n")
        with pytest.raises(InputError) as err:
            ingest_file(engine, f)
        assert (err.value.line, err.value.field) == (2, "response")
