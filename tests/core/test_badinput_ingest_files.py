"""`hilt ingest` refuses, with nothing stored and nothing audited, a file without a single
event and a `--skip-invalid` rejects path that could not take the rejects or would
replace the input file."""

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
from hilt.events.ingest import ingest_events, ingest_file
from hilt.store.tables.core import AuditPendingRow, AuditRow, EventRow


def _counts(engine: Engine) -> tuple[int, int]:
    """Stored events, and audit entries (chained or still pending)."""
    with engine.connect() as conn:
        events, chained, pending = (
            int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (EventRow, AuditRow, AuditPendingRow))
    return events, chained + pending


def _one_good_one_bad(path: Path) -> Path:
    path.write_text(json.dumps({"interaction": {"prompt": "kept"}}) + "\n"
                    + json.dumps({"bad": 1}) + "\n")
    return path


@pytest.mark.parametrize(("name", "content", "hint"), [
    ("empty.jsonl", "", "it is empty or holds only blank lines"),
    ("blank.jsonl", "\n  \n\t\n", "it is empty or holds only blank lines"),
    ("blank.jsonl.gz", None, "it is empty or holds only blank lines"),
    ("header.csv", "interaction.prompt,responses\n\n", "it holds a header and no rows"),
])
@pytest.mark.parametrize("skip_invalid", [False, True])
def test_a_file_without_events_is_refused_with_nothing_audited(
        engine: Engine, tmp_path: Path, name: str, content: str | None, hint: str,
        skip_invalid: bool) -> None:
    f = tmp_path / name
    if content is None:
        f.write_bytes(gzip.compress(b"\n\n"))
    else:
        f.write_text(content)
    with pytest.raises(InputError) as err:
        ingest_file(engine, f, skip_invalid=skip_invalid)
    assert str(err.value) == f"{f}: the file has no events ({hint})"
    assert _counts(engine) == (0, 0)
    assert not (tmp_path / f"{name}.rejects.jsonl").exists()


def test_a_parquet_file_without_rows_is_refused(engine: Engine, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    f = tmp_path / "none.parquet"
    pq.write_table(pa.table({"interaction.prompt": pa.array([], pa.string())}), f)
    with pytest.raises(InputError, match=r"the file has no events \(it has no rows\)"):
        ingest_file(engine, f)
    assert _counts(engine) == (0, 0)


def test_a_file_whose_every_line_is_rejected_still_runs_with_skip_invalid(
        engine: Engine, tmp_path: Path) -> None:
    # it has records: they are all bad, and the rejects file lists them
    f = tmp_path / "bad.jsonl"
    f.write_text('{"bad": 1}\n{"interaction": {"prompt": 5}}\n')
    result = ingest_file(engine, f, skip_invalid=True)
    assert (result.received, result.rejected) == (0, 2)
    rejects = (tmp_path / "bad.jsonl.rejects.jsonl").read_text().splitlines()
    assert [json.loads(line)["line"] for line in rejects] == [1, 2]


def test_an_empty_batch_through_the_python_api_is_accepted(engine: Engine) -> None:
    # as over HTTP: a program flushing a batch with nothing in it is no mistake
    result = ingest_events(engine, [])
    assert (result.received, result.new) == (0, 0)


def test_a_rejects_path_that_is_a_folder_is_refused_before_anything_is_stored(
        engine: Engine, tmp_path: Path) -> None:
    work = tmp_path / "work"
    folder = work / "somedir"
    folder.mkdir(parents=True)
    f = _one_good_one_bad(work / "m.jsonl")
    with pytest.raises(InputError) as err:
        ingest_file(engine, f, skip_invalid=True, rejects_path=folder)
    assert str(err.value) == (f"{folder}, field '--rejects': is a folder; name the "
                              "rejects file to write")
    assert _counts(engine) == (0, 0)
    # no rejects left behind in a temporary file either
    assert sorted(p.name for p in work.iterdir()) == ["m.jsonl", "somedir"]
    assert list(folder.iterdir()) == []


def test_a_rejects_path_that_is_a_folder_is_refused_even_without_bad_lines(
        engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "ok.jsonl"
    f.write_text(json.dumps({"interaction": {"prompt": "fine"}}) + "\n")
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="field '--rejects': is a folder"):
        ingest_file(engine, f, skip_invalid=True, rejects_path=tmp_path / "out")
    assert _counts(engine) == (0, 0)


def test_a_rejects_path_in_a_missing_folder_is_refused_before_anything_is_stored(
        engine: Engine, tmp_path: Path) -> None:
    f = tmp_path / "ok.jsonl"
    f.write_text(json.dumps({"interaction": {"prompt": "fine"}}) + "\n")
    target = tmp_path / "nowhere" / "r.jsonl"
    with pytest.raises(InputError) as err:
        ingest_file(engine, f, skip_invalid=True, rejects_path=target)
    assert str(err.value) == (f"{target}, field '--rejects': folder {target.parent} does "
                              "not exist")
    assert _counts(engine) == (0, 0)


@pytest.mark.parametrize("name_it", ["same", "relative", "hard link", "symbolic link",
                                     "input is a link to it"])
def test_a_rejects_path_that_is_the_input_file_is_refused_and_the_input_kept(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        name_it: str) -> None:
    real = _one_good_one_bad(tmp_path / "self.jsonl")
    before = real.read_bytes()
    source, target = real, real
    if name_it == "relative":
        monkeypatch.chdir(tmp_path)
        source, target = Path("self.jsonl"), Path(".") / ".." / tmp_path.name / "self.jsonl"
    elif name_it == "hard link":
        target = tmp_path / "hard.jsonl"
        os.link(real, target)
    elif name_it == "symbolic link":
        target = tmp_path / "soft.jsonl"
        target.symlink_to(real)
    elif name_it == "input is a link to it":
        source = tmp_path / "alias.jsonl"
        source.symlink_to(real)
    with pytest.raises(InputError) as err:
        ingest_file(engine, source, skip_invalid=True, rejects_path=target)
    assert str(err.value) == (f"{target}, field '--rejects': is the input file: the "
                              "rejects would replace the events it holds")
    assert real.read_bytes() == before
    assert _counts(engine) == (0, 0)


def test_the_cli_exits_2_naming_the_file_or_the_rejects_option(tmp_path: Path) -> None:
    env = dict(os.environ, HILT_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")

    def hilt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hilt", *args], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=120)

    assert hilt("init").returncode == 0
    (tmp_path / "e.jsonl").write_text("")
    empty = hilt("ingest", "e.jsonl")
    assert (empty.returncode, empty.stdout) == (2, "")
    assert empty.stderr.strip() == ("error: e.jsonl: the file has no events (it is empty "
                                    "or holds only blank lines)")
    _one_good_one_bad(tmp_path / "m.jsonl")
    (tmp_path / "somedir").mkdir()
    folder = hilt("ingest", "m.jsonl", "--skip-invalid", "--rejects", "somedir")
    assert folder.returncode == 2 and "Traceback" not in folder.stderr
    assert "somedir, field '--rejects': is a folder" in folder.stderr
    itself = hilt("ingest", "m.jsonl", "--skip-invalid", "--rejects", "m.jsonl")
    assert itself.returncode == 2
    assert "m.jsonl, field '--rejects': is the input file" in itself.stderr
    verify = hilt("audit", "verify")
    assert json.loads(verify.stdout)["entries"] == 0
