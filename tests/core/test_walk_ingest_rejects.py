"""Input that users send and that no store can hold, or that cannot be read as an event:
refused naming file, line and field (never a traceback), a rejected line with
``--skip-invalid`` (never the end of the run), and kept in the rejects file as the file
holds it, so that it can be corrected and sent again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.ingest import ingest_events, ingest_file
from hilt.events.model import FeedbackEvent
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow

GOOD = '{"id":"good","interaction":{"prompt":"p"},"responses":[{"text":"r"}]}\n'
# a CSV cell's JSON may spell a lone surrogate, which no UTF-8 text can hold
SURROGATE_CSV = ('id,prompt,response,metadata\n'
                 'good,p,r,\n'
                 'bad,p,r,"{""a"": [""ok"", ""x\\ud800""]}"\n')


def _stored(engine: Engine) -> list[str]:
    with transaction(engine) as s:
        return sorted(s.scalars(select(EventRow.id)))


def _rejects(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_a_lone_surrogate_in_a_csv_cell_is_refused_naming_the_field(
        engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text(SURROGATE_CSV, encoding="utf-8")
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(f), 3, "context.metadata.a[1]")
    assert "surrogate" in err.value.reason and _stored(engine) == []

    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (1, 1) and _stored(engine) == ["good"]
    [reject] = _rejects(tmp_path / "s.csv.rejects.jsonl")
    assert (reject["line"], reject["field"]) == (3, "context.metadata.a[1]")
    assert reject["record"]["context"]["metadata"]["a"] == ["ok", "x\ud800"]


def test_python_events_with_a_lone_surrogate_are_refused_naming_the_field(
        engine: Engine) -> None:
    as_dict = {"interaction": {"prompt": "p"}, "responses": [{"text": "a\udc80"}]}
    built = FeedbackEvent.model_validate({"id": "given", **as_dict})
    for events in ([as_dict], [{"interaction": {"prompt": "ok"}}, built]):
        with pytest.raises(InputError) as err:
            ingest_events(engine, events)
        assert (err.value.line, err.value.field) == (len(events), "responses[0].text")
    assert _stored(engine) == []


def test_a_nul_character_is_one_rejected_line_with_skip_invalid(
        engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "n.jsonl"
    f.write_text(GOOD + '{"id":"nul","interaction":{"prompt":"a\\u0000b"},'
                 '"responses":[{"text":"r"}]}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert (err.value.line, err.value.field) == (2, "interaction.prompt")
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (1, 1) and _stored(engine) == ["good"]
    [reject] = _rejects(tmp_path / "n.jsonl.rejects.jsonl")
    assert reject["field"] == "interaction.prompt"
    assert reject["record"]["interaction"]["prompt"] == "a\x00b"


def test_rejects_keep_jsonl_lines_that_are_not_events(engine: Engine,
                                                      tmp_path: Path) -> None:
    f = tmp_path / "j.jsonl"
    digits = "9" * 5000  # past json's limit on an integer's digits
    f.write_bytes((GOOD + "not json at all\n" + '[1, 2]\n' + "caf\xe9\n").encode("latin-1")
                  + ('{"id":"big","interaction":{"prompt":"p"},"context":{"metadata":'
                     f'{{"n":{digits}}}}}}}\n').encode())
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (1, 4)
    rejects = _rejects(tmp_path / "j.jsonl.rejects.jsonl")
    assert [r["line"] for r in rejects] == [2, 3, 4, 5]
    assert [r["record"] for r in rejects[:3]] == ["not json at all", [1, 2], "caf\\xe9"]
    assert "not UTF-8" in rejects[2]["reason"]
    assert isinstance(rejects[3]["record"], str) and digits in rejects[3]["record"]


def test_rejects_keep_csv_rows_that_are_not_events(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text("id,prompt,response,seed\n"
                 "good,p,r,1\n"
                 "short,p\n"
                 "long,p,r,2,extra\n"
                 "fine,p,r,3\n", encoding="utf-8")
    # a column setting the same field as another: the row's cells by column
    g = tmp_path / "d.csv"
    g.write_text("id,prompt,seed,context.decoder.seed\nclash,p,1,2\nok,p,1,\n",
                 encoding="utf-8")
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.new, result.rejected) == (2, 2)
    short, long = _rejects(tmp_path / "c.csv.rejects.jsonl")
    assert (short["line"], short["record"]) == (3, ["short", "p"])
    assert "fewer cells" in short["reason"]
    assert (long["line"], long["record"]) == (4, ["long", "p", "r", "2", "extra"])
    assert "more cells" in long["reason"]

    result = ingest_file(engine, g, skip_invalid=True)
    assert (result.new, result.rejected) == (1, 1)
    [clash] = _rejects(tmp_path / "d.csv.rejects.jsonl")
    assert clash["line"] == 2 and "conflicting columns" in clash["reason"]
    assert clash["record"] == {"id": "clash", "prompt": "p", "seed": "1",
                               "context.decoder.seed": "2"}


def test_an_integer_too_long_to_read_in_a_csv_cell_is_refused_naming_the_field(
        engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "big.csv"
    f.write_text('id,prompt,metadata\nbig,p,"{""n"": ' + "9" * 5000 + '}"\n',
                 encoding="utf-8")
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    # the field is the cell's column and the key inside its JSON
    assert (err.value.line, err.value.field) == (2, "metadata.n")
    assert "digits" in err.value.reason and "9" * 50 not in str(err.value)
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(EventRow)) == 0


def test_a_byte_order_mark_inside_a_jsonl_file_says_what_it_is(tmp_path: Path,
                                                               engine: Engine) -> None:
    f = tmp_path / "joined.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + GOOD.encode() + b"\xef\xbb\xbf"
                  + GOOD.replace("good", "two").encode())
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert err.value.line == 2 and "byte-order mark" in err.value.reason


def test_nul_characters_in_csv_and_parquet_rows_are_rejected_lines(
        engine: Engine, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    c = tmp_path / "n.csv"
    c.write_text("id,prompt,response,tags\ngood,p,r,\nbad,p,r\x00s,\n", encoding="utf-8")
    q = tmp_path / "n.parquet"
    pq.write_table(pa.table({"id": ["fine", "bad"], "prompt": ["p", "p"],
                             "tags": [["a"], ["a", "b\x00"]]}), q)
    for f, field in ((c, "responses[0].text"), (q, "context.tags[1]")):
        with pytest.raises(InputError) as err:
            ingest_file(engine, f)
        assert (err.value.line, err.value.field) == (3 if f == c else 2, field)
        result = ingest_file(engine, f, skip_invalid=True)
        assert result.rejected == 1
        [reject] = _rejects(f.with_name(f.name + ".rejects.jsonl"))
        assert reject["field"] == field and reject["record"]["id"] == "bad"
    assert _stored(engine) == ["fine", "good"]


def test_a_table_without_an_interaction_column_is_refused_once(
        engine: Engine, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    c = tmp_path / "t.csv"
    c.write_text("id,text,response\na,hello,hi\nb,bye,ciao\n", encoding="utf-8")
    q = tmp_path / "t.parquet"
    pq.write_table(pa.table({"question": ["hello"], "response": ["hi"]}), q)
    for f, line in ((c, 1), (q, None)):
        for skip in (False, True):  # the same with --skip-invalid: no row could be good
            with pytest.raises(InputError) as err:
                ingest_file(engine, f, skip_invalid=skip)
            assert (err.value.file, err.value.line) == (str(f), line)
            assert "no column gives the interaction" in err.value.reason
            assert "'prompt'" in err.value.reason
    assert _stored(engine) == []


def test_an_empty_prompt_cell_is_named_by_its_column(engine: Engine,
                                                      tmp_path: Path) -> None:
    f = tmp_path / "e.csv"
    f.write_text("id,prompt,response\ngood,p,r\nempty,,r\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        ingest_file(engine, f)
    assert (err.value.line, err.value.field) == (3, "prompt")
    assert "empty" in err.value.reason
    assert ingest_file(engine, f, skip_invalid=True).rejected == 1
    [reject] = _rejects(tmp_path / "e.csv.rejects.jsonl")
    assert reject["record"] == {"id": "empty", "prompt": "", "response": "r"}
