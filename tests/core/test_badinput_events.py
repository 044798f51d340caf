"""Event input that ingest refuses, naming file, line and field, with nothing stored:
a key repeated in a JSON object, a number that is not finite in a free-form field,
JSON values of the wrong JSON type (CSV cells are still converted), files that cannot
be read, and a CSV byte that is not UTF-8 (named on its own line)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.ingest import ingest_file
from hilt.events.model import FeedbackEvent
from hilt.events.readers import read_records
from hilt.events.validate import _keys_given, _no_key_repeated, parse_batch_json, parse_event
from hilt.store.tables.core import EventRow

GOOD = '{"interaction": {"prompt": "fine"}}'


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar_one()


def _refused(engine: Engine, path: Path) -> InputError:
    with pytest.raises(InputError) as err:
        ingest_file(engine, path)
    assert _count(engine) == 0
    return err.value


@pytest.mark.parametrize("line, field", [
    ('{"interaction": {"prompt": "a"}, "interaction": {"prompt": "b"}}', "interaction"),
    ('{"interaction": {"prompt": "a"}, "responses": [{"text": "x"}], '
     '"responses": [{"text": "y"}]}', "responses"),
    ('{"interaction": {"prompt": "a", "prompt": "b"}}', "interaction.prompt"),
    ('{"interaction": {"prompt": "a"}, "responses": [{"text": "r"}], '
     '"feedback": [{"kind": "text", "text": "a", "text": "b"}]}', "feedback[0].text"),
    ('{"interaction": {"prompt": "a"}, "context": {"metadata": {"x": {"y": 1, "y": 2}}}}',
     "context.metadata.x.y"),
    ('{"interaction": {"prompt": "a"}, "scores": {"g": 0.1, "g": 0.9}}', "scores.g"),
    # white space before a colon, and a repeated key whose last value does not validate
    ('{"interaction" : {"prompt": "a"}, "interaction" : {"prompt": "b"}}', "interaction"),
    ('{"interaction": {"prompt": "a"}, "interaction": {"bad": 1}}', "interaction"),
])
def test_a_key_repeated_in_a_jsonl_object_is_refused(engine: Engine, tmp_path: Path,
                                                     line: str, field: str) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(GOOD + "\n" + line + "\n")
    err = _refused(engine, f)
    assert (err.file, err.line, err.field) == (str(f), 2, field)
    assert "appears more than once" in err.reason


@pytest.mark.parametrize("text", [
    '{"interaction": {"prompt": "\\":x"}, "context": {"metadata": {":a": ":"}}}',
    '{"interaction": {"prompt": "a \\\\"}, "scores": {"x": 1}}',
    '{"interaction": {"prompt": "Note : fine"}, "scores": {"x": 1}}',
])
def test_text_that_looks_like_keys_is_not_a_repeated_key(text: str) -> None:
    assert parse_event(text).interaction.prompt is not None


def test_a_fully_populated_event_is_counted_without_parsing_again() -> None:
    """Every key of every part of an event is counted, so no line but one with a
    repeated key (or white space before a colon) is parsed a second time."""
    event = {
        "id": "e1", "created_at": "2025-01-01T00:00:00Z",
        "interaction": {"messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "yo"}]},
        "responses": [{"text": "a", "id": "r1", "model_version": "m"}, {"text": "b"}],
        "feedback": [{"kind": kind, **extra} for kind, extra in [
            ("rating", {"value": 4, "scale_min": 1, "scale_max": 5, "response_index": 0}),
            ("thumbs", {"up": True, "author": "a", "origin": "human"}),
            ("flag", {"reason": "r", "category": "c"}),
            ("preference", {"chosen": 0, "rejected": 1, "strength": 0.5}),
            ("label", {"name": "n", "value": "v"}), ("text", {"text": "t"}),
            ("edit", {"text": "e", "created_at": "2025-01-01T00:00:00Z"})]],
        "context": {"model_version": "m", "prompt_template_id": "p",
                    "prompt_template_version": "1", "role_format": "chatml",
                    "policy_version": "p1", "source": "s", "subject_id": "u",
                    "consent": ["train"], "tags": ["t"],
                    "metadata": {"a": {"b": [1, {"c": 2}]}},
                    "decoder": {"temperature": 0.5, "top_p": 0.9, "top_k": 5,
                                "max_tokens": 9, "seed": 1, "stop": ["x"],
                                "extra": {"k": {"l": 1}}}},
        "scores": {"guardrail": 0.5}}
    text = json.dumps(event)
    parsed = FeedbackEvent.model_validate_json(text, strict=True)
    assert _no_key_repeated(text, _keys_given(parsed))
    assert _no_key_repeated(json.dumps(event, separators=(",", ":")), _keys_given(parsed))


@pytest.mark.parametrize("value, field", [
    ('"context": {"metadata": {"x": NaN}}', "context.metadata.x"),
    ('"context": {"metadata": {"x": 1e999}}', "context.metadata.x"),
    ('"context": {"metadata": {"x": {"y": [1, -Infinity]}}}', "context.metadata.x.y[1]"),
    ('"context": {"decoder": {"extra": {"x": Infinity}}}', "context.decoder.extra.x"),
])
def test_a_number_that_is_not_finite_in_a_free_form_field_is_refused(
        engine: Engine, tmp_path: Path, value: str, field: str) -> None:
    f = tmp_path / "n.jsonl"
    f.write_text('{"interaction": {"prompt": "md"}, ' + value + "}\n")
    err = _refused(engine, f)
    assert (err.line, err.field) == (1, field)
    assert "finite" in err.reason


def test_a_csv_json_cell_is_held_to_the_same_rules(engine: Engine, tmp_path: Path) -> None:
    repeated = tmp_path / "r.csv"
    repeated.write_text('prompt,metadata\nfine,{}\nq,"{""a"": 1, ""a"": 2}"\n')
    err = _refused(engine, repeated)
    assert (err.line, err.field) == (3, "metadata.a")
    nan = tmp_path / "n.csv"
    nan.write_text('prompt,metadata\nq,"{""a"": [NaN]}"\n')
    err = _refused(engine, nan)
    assert (err.line, err.field) == (2, "metadata.a[0]")


@pytest.mark.parametrize("feedback, field", [
    ({"kind": "thumbs", "up": "no"}, "feedback[0].up"),
    ({"kind": "thumbs", "up": 0}, "feedback[0].up"),
    ({"kind": "rating", "value": "4"}, "feedback[0].value"),
    ({"kind": "preference", "chosen": "1", "rejected": 0}, "feedback[0].chosen"),
    ({"kind": "preference", "chosen": 1, "rejected": 0.0}, "feedback[0].rejected"),
])
def test_jsonl_values_must_have_their_json_type(engine: Engine, tmp_path: Path,
                                                feedback: dict, field: str) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"interaction": {"prompt": "q"},
                             "responses": [{"text": "a"}, {"text": "b"}],
                             "feedback": [feedback]}) + "\n")
    assert _refused(engine, f).field == field
    scores = tmp_path / "s.jsonl"
    scores.write_text('{"interaction": {"prompt": "q"}, "scores": {"x": "0.5"}}\n')
    assert _refused(engine, scores).field == "scores.x"


def test_csv_cells_are_still_converted(engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text('prompt,response,scores.x,feedback\n'
                 'q,a,0.5,"[{""kind"": ""thumbs"", ""up"": ""no""}]"\n')
    assert ingest_file(engine, f).new == 1
    event = parse_event(next(r for _, r in read_records(f)))  # type: ignore[arg-type]
    assert event.scores == {"x": 0.5} and event.feedback[0].up is False  # type: ignore[union-attr]


def test_an_http_batch_is_held_to_the_same_rules() -> None:
    with pytest.raises(InputError) as err:
        parse_batch_json(b'{"events": [{"interaction": {"prompt": "a"}}, '
                         b'{"interaction": {"prompt": "a", "prompt": "b"}}]}', file="request")
    assert (err.value.line, err.value.field) == (1, "interaction.prompt")
    with pytest.raises(InputError) as err:
        parse_batch_json(b'{"events": [{"interaction": {"prompt": "a"}, '
                         b'"context": {"metadata": {"x": NaN}}}]}', file="request")
    assert (err.value.line, err.value.field) == (0, "context.metadata.x")
    with pytest.raises(InputError) as err:
        parse_batch_json(b'{"events": [{"interaction": {"prompt": "a"}, "responses": '
                         b'[{"text": "r"}], "feedback": [{"kind": "thumbs", "up": "yes"}]}]}',
                         file="request")
    assert err.value.field == "feedback[0].up"
    assert len(parse_batch_json(b'{"events": [{"interaction": {"prompt": "a"}}]}',
                                file="request")) == 1


def _truncated_gzip(path: Path) -> Path:
    lines = "".join(json.dumps({"interaction": {"prompt": f"p{i} " + "w" * (i % 50)}}) + "\n"
                    for i in range(2000)).encode()
    data = gzip.compress(lines)
    path.write_bytes(data[:len(data) // 2])
    return path


@pytest.mark.parametrize("skip_invalid", [False, True])
def test_files_that_cannot_be_read_are_input_errors(engine: Engine, tmp_path: Path,
                                                    skip_invalid: bool) -> None:
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    not_gzip = tmp_path / "x.jsonl.gz"
    not_gzip.write_text(GOOD + "\n")
    not_gzip_csv = tmp_path / "x.csv.gz"
    not_gzip_csv.write_text("prompt\nq\n")
    for path in (folder, not_gzip, not_gzip_csv):
        with pytest.raises(InputError, match="cannot read file") as err:
            ingest_file(engine, path, skip_invalid=skip_invalid)
        assert err.value.file == str(path) and err.value.line is None
    cut = _truncated_gzip(tmp_path / "t.jsonl.gz")
    with pytest.raises(InputError, match="cannot read file") as err:
        ingest_file(engine, cut, skip_invalid=skip_invalid)
    assert err.value.line is not None and err.value.line > 1
    assert _count(engine) == 0


def test_the_cli_exits_2_on_a_corrupt_gzip(tmp_path: Path) -> None:
    env = dict(os.environ, HILT_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
    run = [sys.executable, "-m", "hilt"]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True, cwd=tmp_path)
    cut = _truncated_gzip(tmp_path / "t.jsonl.gz")
    out = subprocess.run([*run, "ingest", str(cut), "--skip-invalid"], env=env,
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "cannot read file" in out.stderr and "Traceback" not in out.stderr


def test_a_csv_byte_that_is_not_utf8_is_named_on_its_line(tmp_path: Path) -> None:
    rows = [b"prompt,response"] + [f"q{i},r{i}".encode() for i in range(1, 1000)]
    rows[500] = b"q500,r\xff500"
    f = tmp_path / "n.csv"
    f.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(InputError, match="not UTF-8") as err:
        list(read_records(f, lenient=True))
    assert err.value.line == 501
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b'prompt,response\r\nq1,"r\r\n1"\r\nq2,\xffr2\r\n')
    with pytest.raises(InputError, match="not UTF-8") as err:
        list(read_records(crlf))
    assert err.value.line == 4


def test_csv_line_breaks_are_read_as_before(tmp_path: Path) -> None:
    """Bytes decoded line by line still break lines as a text file opened with
    newline="" does: a lone carriage return ends a line, one inside quotes is kept."""
    f = tmp_path / "cr.csv"
    f.write_bytes(b'\xef\xbb\xbfprompt,response\rq1,"r\r1"\rq2,r2\r')
    records = list(read_records(f))
    assert [line for line, _ in records] == [3, 4]
    assert records[0][1] == {"interaction": {"prompt": "q1"}, "responses": [{"text": "r\r1"}]}
