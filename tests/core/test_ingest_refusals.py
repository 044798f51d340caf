"""Input that ingest refuses, naming file, line and field, with nothing stored: times
outside the range a UTC datetime holds, malformed or short CSV rows, columns that set the
same field, unreadable Parquet; and ids stored with other content under --skip-invalid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.ingest import ingest_events, ingest_file
from hilt.events.readers import read_records
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar_one()


def _event(i: int, **extra: object) -> dict:
    return {"interaction": {"prompt": f"prompt {i}"}, "responses": [{"text": f"answer {i}"}],
            "context": {"consent": ["train"], "subject_id": f"s{i}"}, **extra}


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("when", ["9999-12-31T23:30:00-01:00", "0001-01-01T00:00:00+01:00"])
def test_created_at_outside_the_utc_range_is_refused(engine: Engine, tmp_path: Path,
                                                     when: str) -> None:
    f = _jsonl(tmp_path / "t.jsonl", [_event(1), _event(2, created_at=when)])
    with pytest.raises(InputError, match="outside 0001-01-01..9999-12-31") as err:
        ingest_file(engine, f)
    assert (err.value.file, err.value.line, err.value.field) == (str(f), 2, "created_at")
    assert _count(engine) == 0


def test_feedback_created_at_outside_the_utc_range_is_refused(engine: Engine,
                                                              tmp_path: Path) -> None:
    feedback = [{"kind": "text", "text": "x", "created_at": "0001-01-01T00:00:00+01:00"}]
    f = _jsonl(tmp_path / "t.jsonl", [_event(1, feedback=feedback)])
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert (err.value.line, err.value.field) == (1, "feedback[0].created_at")


def test_created_at_at_the_edges_of_the_range_is_stored(engine: Engine) -> None:
    ingest_events(engine, [_event(1, id="late", created_at="9999-12-31T22:30:00-01:00"),
                           _event(2, id="early", created_at="0001-01-01T01:00:00+01:00")])
    with transaction(engine) as session:
        assert session.get(EventRow, "late").created_at.year == 9999
        assert session.get(EventRow, "early").created_at.year == 1


def test_cli_refuses_an_out_of_range_time_with_exit_2(tmp_path: Path) -> None:
    env = dict(os.environ, HILT_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
    run = [sys.executable, "-m", "hilt"]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True, cwd=tmp_path)
    f = _jsonl(tmp_path / "t.jsonl", [_event(1, created_at="9999-12-31T23:30:00-01:00")])
    out = subprocess.run([*run, "ingest", str(f)], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "line 1, field 'created_at'" in out.stderr and "Traceback" not in out.stderr


def test_a_stray_quote_in_csv_is_refused_not_swallowing_later_rows(
        engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "stray.csv"
    f.write_text('prompt,response,consent\nfirst,ok,train\n"second with a stray quote,ok,'
                 'train\nthird,ok,train\nfourth,ok,train\n')
    with pytest.raises(InputError, match="malformed CSV") as err:
        ingest_file(engine, f)
    assert (err.value.file, err.value.line) == (str(f), 3)
    with pytest.raises(InputError, match="malformed CSV"):
        ingest_file(engine, f, skip_invalid=True)  # later rows cannot be trusted
    assert _count(engine) == 0


def test_a_csv_row_with_too_few_cells_is_refused(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "short.csv"
    f.write_text("prompt,response,consent,subject_id\nfull,ok,train,u1\nshort,ok\n")
    with pytest.raises(InputError, match=r"fewer cells than header columns \(2 of 4\)") as err:
        ingest_file(engine, f)
    assert err.value.line == 3
    assert _count(engine) == 0
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (1, 1)


@pytest.mark.parametrize(("header", "row", "field"), [
    ("prompt,response,context.decoder.seed,seed", 'p,r,1,2', "seed"),
    ("prompt,response,seed,context.decoder.seed", 'p,r,1,2', "context.decoder.seed"),
    ("prompt,response,consent,context", 'p,r,train,"{""consent"": [""eval""]}"', "context"),
    ("prompt,response,context,subject_id", 'p,r,"{""subject_id"": ""u1""}",u2',
     "subject_id"),
])
def test_columns_setting_the_same_field_are_refused(tmp_path: Path, header: str, row: str,
                                                    field: str) -> None:
    f = tmp_path / "c.csv"
    f.write_text(f"{header}\n{row}\n")
    with pytest.raises(InputError, match="conflicting columns") as err:
        list(read_records(f))
    assert (err.value.line, err.value.field) == (2, field)


def test_a_context_object_and_columns_for_other_fields_are_merged(tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text('prompt,response,consent,context\np1,r,train,"{""subject_id"":""u1""}"\n')
    [(_, record)] = list(read_records(f))
    assert isinstance(record, dict)
    assert record["context"] == {"consent": ["train"], "subject_id": "u1"}


def test_a_repeated_csv_header_name_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "dup.csv"
    f.write_text("prompt,response,consent,consent\np,r,train,eval\n")
    with pytest.raises(InputError, match="appears more than once") as err:
        list(read_records(f))
    assert (err.value.line, err.value.field) == (1, "consent")


def test_a_corrupt_parquet_file_is_an_input_error(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "bad.parquet"
    f.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file") as err:
        ingest_file(engine, f)
    assert err.value.file == str(f)


def test_skip_invalid_rejects_an_id_stored_with_other_content(engine: Engine,
                                                              tmp_path: Path) -> None:
    ingest_events(engine, [_event(1, id="fixed")])
    f = _jsonl(tmp_path / "c.jsonl", [_event(2), _event(3, id="fixed"), _event(4, id="x"),
                                      _event(5, id="x")])
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (2, 2)
    rejects = [json.loads(x) for x in (tmp_path / "c.jsonl.rejects.jsonl").read_text()
               .splitlines()]
    assert [(r["line"], r["field"]) for r in rejects] == [(2, "id"), (4, "id")]
    assert "already stored with other content" in rejects[0]["reason"]
    assert rejects[0]["record"]["interaction"]["prompt"] == "prompt 3"
    with transaction(engine) as session:
        assert session.get(EventRow, "fixed").payload["interaction"]["prompt"] == "prompt 1"
        assert session.get(EventRow, "x").payload["interaction"]["prompt"] == "prompt 4"
