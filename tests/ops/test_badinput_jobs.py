"""``hilt jobs start`` refuses a parameter given twice and an input file that is not
there, when the job is queued; a job whose command refuses its input fails with that
command's one error line, not its whole error output."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from click.testing import Result
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.ops.commands import run_contract
from hilt.store.tables.ops import JobRow


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "jobroot"
    folder.mkdir()
    monkeypatch.setenv("HILT_JOB_ROOT", str(folder))
    return folder


def _jobs(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(JobRow)).scalar_one()


def _start(db_url: str, *params: str) -> Result:
    args = ["jobs", "start", "train.reward"]
    for param in params:
        args += ["-p", param]
    return CliRunner().invoke(app, [*args, "--db", db_url])


def test_a_parameter_given_twice_is_refused(root: Path, engine: Engine,
                                            db_url: str) -> None:
    (root / "p.jsonl").write_text("{}\n")
    result = _start(db_url, "pairs=p.jsonl", "out=a", "out=b")
    assert isinstance(result.exception, InputError)
    assert "'out' is given twice (out=a and out=b)" in str(result.exception)
    assert _jobs(engine) == 0


@pytest.mark.parametrize("pairs, words", [("nosuch.jsonl", "not found in the job folder"),
                                          ("folder", "not a file")])
def test_an_input_file_that_is_not_there_is_refused_when_queued(
        root: Path, engine: Engine, db_url: str, pairs: str, words: str) -> None:
    (root / "folder").mkdir()
    result = _start(db_url, f"pairs={pairs}", "out=rm")
    error = result.exception
    assert isinstance(error, InputError) and error.field == "pairs", result
    assert error.file == pairs and words in error.reason
    assert _jobs(engine) == 0
    (root / "p.jsonl").write_text("{}\n")
    queued = _start(db_url, "pairs=p.jsonl", "out=rm")
    assert queued.exit_code == 0, queued.output
    assert _jobs(engine) == 1


def test_a_command_refusing_its_input_fails_the_job_with_its_error_line(
        root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    """A stand-in for the training command that refuses its input as hilt does: a
    traceback-free error line on stderr, exit 2."""
    child = tmp_path / "refuses.py"
    child.write_text("import sys\nsys.stderr.write('loading...\\nerror: p.jsonl, line 3, "
                     "field \\'chosen\\': missing required field\\n')\nsys.exit(2)\n")
    monkeypatch.setenv("HILT_TRAIN_LAUNCHER", f"{sys.executable} {child}")
    ctx = SimpleNamespace(params={"pairs": "p.jsonl", "out": "rm"}, engine=engine,
                          progress=lambda *_: None)
    with pytest.raises(InputError) as err:
        run_contract(ctx, "train.reward", poll_s=0.05)  # type: ignore[arg-type]
    assert str(err.value) == ("train.reward: p.jsonl, line 3, field 'chosen': missing "
                              "required field")
