"""JSON nested past the depth limit is refused naming the file, line and field, never a
RecursionError: the JSONL readers, ``--answers``-style fields and event files alike. The
limit is the one pydantic's parser (events, HTTP batches) enforces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.ingest import ingest_file
from hilt.jsonl import (
    MAX_DEPTH,
    iter_json_objects,
    loads_strict,
    repeated_key_path,
    too_deep_path,
)
from hilt.store.tables.core import EventRow

TOO_DEEP = f"nested too deeply (limit {MAX_DEPTH} levels of arrays and objects)"


def nested(levels: int, inner: str = "") -> str:
    return "[" * levels + inner + "]" * levels


def test_a_jsonl_line_nested_100000_deep_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "suite.jsonl"
    path.write_text('{"a": 1}\n{"id": "x", "a": {"b": ' + nested(100_000) + "}}\n")
    with pytest.raises(InputError) as caught:
        list(iter_json_objects(path))
    err = caught.value
    assert (err.file, err.line, err.reason) == (str(path), 2, TOO_DEEP)
    assert err.field == "a.b[0][0][0][0][0][0][0][0][0][0]…"


def test_a_field_read_as_json_names_itself() -> None:
    with pytest.raises(InputError) as caught:
        loads_strict('{"verdict": ' + nested(5000) + "}", field="--answers")
    assert caught.value.field == "--answers.verdict[0][0][0][0][0][0][0][0][0][0][0]…"
    with pytest.raises(InputError) as caught:
        loads_strict(nested(MAX_DEPTH + 2), field="--answers")
    assert caught.value.field == "--answers[0][0][0][0][0][0][0][0][0][0][0][0]…"


def test_the_limit_is_pydantics() -> None:
    parser: TypeAdapter[Any] = TypeAdapter(Any)
    for text in (nested(MAX_DEPTH + 1), '{"a": ' + nested(MAX_DEPTH) + "}"):
        assert loads_strict(text) == parser.validate_json(text)
        assert too_deep_path(text) is None
    for text in (nested(MAX_DEPTH + 2), '{"a": ' + nested(MAX_DEPTH + 1) + "}"):
        with pytest.raises(InputError, match="nested too deeply"):
            loads_strict(text)
        with pytest.raises(ValidationError, match="recursion limit exceeded"):
            parser.validate_json(text)


def test_the_scan_reads_strings_keys_and_indices() -> None:
    deep = nested(MAX_DEPTH)
    # brackets inside strings are text; escaped quotes do not end a string
    text = ('{"x": "[[[[\\"{{{", "k\\"ey" : [1, "]", {"n": [0, 1, ' + deep + "]}]}")
    assert too_deep_path(text)[:5] == ("k\"ey", 2, "n", 2, 0)  # type: ignore[index]
    assert too_deep_path(text.encode()) == too_deep_path(text)
    assert too_deep_path('{"s": "' + "[" * 1000 + '"}') is None


def test_looking_for_a_repeated_key_never_recurses_too_deep() -> None:
    # past what json reads: no answer, and no RecursionError
    assert repeated_key_path('{"a": ' + nested(100_000) + "}") is None
    # what json reads, but a recursive walk could not: the key is found
    text = '{"a": ' + nested(900, '{"k": 1, "k": 2}') + "}"
    path = repeated_key_path(text)
    assert path is not None and path[0] == "a" and path[-1] == "k" and len(path) == 902


def test_an_event_file_with_a_deep_line_is_refused_naming_the_line(
        engine: Engine, tmp_path: Path) -> None:
    good = {"interaction": {"prompt": "p"}, "responses": [{"text": "r"}]}
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:-1]
                    + ', "scores": {"a": ' + nested(100_000) + "}}\n")
    with pytest.raises(InputError) as caught:
        ingest_file(engine, path)
    assert (caught.value.file, caught.value.line) == (str(path), 2)
    assert caught.value.reason.startswith("invalid JSON: recursion limit exceeded")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar() == 0
    # kept going past bad lines, the deep one is a reject like any other
    kept = ingest_file(engine, path, skip_invalid=True)
    assert (kept.new, kept.rejected) == (1, 1)
