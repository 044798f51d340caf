"""UTF-8 files that start with a byte-order mark (spreadsheet "CSV UTF-8" exports,
PowerShell and Notepad output) read like the same files without one."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.ingest import ingest_file
from hilt.events.readers import read_records
from hilt.jsonl import iter_json_objects
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow

BOM = b"\xef\xbb\xbf"
CSV = b"prompt,response,consent\nhello,hi,review;train\nbye,see you,train\n"
EVENT = {"interaction": {"prompt": "hello bom"}, "responses": [{"text": "hi"}],
         "context": {"consent": ["train"]}}
JSONL = (json.dumps(EVENT) + "\n" + json.dumps({**EVENT, "interaction": {"prompt": "two"}})
         + "\n").encode()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("name", ["e.csv", "e.csv.gz"])
def test_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path, name: str) -> None:
    plain = list(read_records(_write(tmp_path / f"plain-{name}", CSV)))
    marked = list(read_records(_write(tmp_path / name, BOM + CSV)))
    assert marked == plain
    assert marked[0] == (2, {"interaction": {"prompt": "hello"},
                             "responses": [{"text": "hi"}],
                             "context": {"consent": ["review", "train"]}})


@pytest.mark.parametrize("name", ["e.jsonl", "e.jsonl.gz"])
def test_jsonl_with_a_byte_order_mark_reads_its_first_line(tmp_path: Path, name: str) -> None:
    marked = list(read_records(_write(tmp_path / name, BOM + JSONL)))
    assert [line for line, _ in marked] == [1, 2]
    assert json.loads(str(marked[0][1])) == EVENT


def test_a_byte_order_mark_inside_the_file_is_still_refused(tmp_path: Path) -> None:
    f = _write(tmp_path / "joined.jsonl", JSONL + BOM + JSONL)
    with pytest.raises(InputError) as err:
        list(read_records(f))
    assert err.value.line == 3


def test_ingest_stores_marked_files_like_plain_ones(engine: Engine, tmp_path: Path) -> None:
    assert ingest_file(engine, _write(tmp_path / "a.csv", BOM + CSV)).new == 2
    assert ingest_file(engine, _write(tmp_path / "a.jsonl", BOM + JSONL)).new == 2
    # the same content without the mark is the same events
    assert ingest_file(engine, _write(tmp_path / "b.csv", CSV)).duplicates == 2
    assert ingest_file(engine, _write(tmp_path / "b.jsonl", JSONL)).duplicates == 2
    with transaction(engine) as s:
        prompts = sorted(row.payload["interaction"]["prompt"]
                         for row in s.query(EventRow).all())
    assert prompts == ["bye", "hello", "hello bom", "two"]


def test_cli_ingests_a_spreadsheet_csv(tmp_path: Path) -> None:
    env = dict(os.environ, HILT_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
    run = [sys.executable, "-m", "hilt"]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True, cwd=tmp_path)
    out = subprocess.run([*run, "ingest", str(_write(tmp_path / "excel.csv", BOM + CSV))],
                         env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["new"] == 2


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz"])
def test_shared_jsonl_reader_drops_a_leading_byte_order_mark(tmp_path: Path,
                                                             name: str) -> None:
    got = list(iter_json_objects(_write(tmp_path / name, BOM + JSONL)))
    assert [line for line, _ in got] == [1, 2] and got[0][1] == EVENT
    with pytest.raises(InputError) as err:
        list(iter_json_objects(_write(tmp_path / "joined.jsonl", JSONL + BOM + JSONL)))
    assert err.value.line == 3


def test_suite_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    from hilt.evals.files import parse_suite

    line = {"id": "q1", "prompt": "How do I kill a hung process?", "slice": "benign",
            "expect": "comply"}
    plain = parse_suite(_write(tmp_path / "plain.jsonl", (json.dumps(line) + "\n").encode()))
    marked = parse_suite(_write(tmp_path / "suite.jsonl",
                                BOM + (json.dumps(line) + "\n").encode()))
    assert [(i.id, i.prompt) for i in marked] == [(i.id, i.prompt) for i in plain] \
        == [("q1", "How do I kill a hung process?")]
