"""The response file of ``hilt generate --out``: a folder, a folder that does not exist,
or the suite itself is refused naming ``--out``; the file is written through a temporary
file of its own (never a fixed name another run may be writing), removed on failure.
The demo's HTML report is written the same way."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.generate import check_responses_out, write_responses
from hilt.sim.report import write_report

RESULT: dict[str, Any] = {
    "lines": [{"id": "q0", "response": "hello", "generation": {"cache_key": "k0",
                                                               "cached": False}}],
    "settings": {"model": "m", "decoder": {"temperature": 0.0}},
}


def _suite(path: Path) -> Path:
    path.write_text(json.dumps({"id": "q0", "prompt": "p0", "slice": "s",
                                "expect": "comply"}) + "\n", encoding="utf-8")
    return path


def test_an_out_that_cannot_be_a_response_file_is_refused_naming_out(tmp_path: Path
                                                                      ) -> None:
    suite = _suite(tmp_path / "suite.jsonl")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "afile").write_text("x")
    os.link(suite, tmp_path / "hardlink.jsonl")
    cases = {tmp_path / "outdir": "is a folder",
             tmp_path / "nosuch" / "dir" / "g.jsonl": "does not exist",
             tmp_path / "afile" / "g.jsonl": "is not a folder",
             suite: "is the --suite file",
             tmp_path / "hardlink.jsonl": "is the --suite file",
             _suite(tmp_path / "another_suite.jsonl"): "holds a suite"}
    for out, words in cases.items():
        with pytest.raises(InputError, match=words) as err:
            check_responses_out(out, suite=suite)
        assert (err.value.file, err.value.field) == (str(out), "--out")
    assert check_responses_out(tmp_path / "new.jsonl", suite=suite) == tmp_path / "new.jsonl"
    # an existing response file may be replaced
    assert check_responses_out(tmp_path / "afile", suite=suite) == tmp_path / "afile"


def test_writing_responses_into_a_folder_is_an_input_error_leaving_nothing(
        tmp_path: Path) -> None:
    (tmp_path / "outdir").mkdir()
    with pytest.raises(InputError) as err:
        write_responses(tmp_path / "outdir", RESULT)
    assert err.value.field == "--out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outdir"]
    suite = _suite(tmp_path / "suite.jsonl")
    with pytest.raises(InputError, match="--suite"):
        write_responses(suite, RESULT, suite=suite)
    assert json.loads(suite.read_text())["prompt"] == "p0"


def test_responses_are_written_through_a_temporary_file_of_their_own(
        tmp_path: Path) -> None:
    out = tmp_path / "cand.jsonl"
    # the fixed name an earlier version used: another run's file, left alone
    other = tmp_path / ".cand.jsonl.tmp"
    other.write_text("another run's lines\n")
    write_responses(out, RESULT)
    assert json.loads(out.read_text())["generation"]["settings"]["model"] == "m"
    assert other.read_text() == "another run's lines\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cand.jsonl.tmp", "cand.jsonl"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path
                                                                      ) -> None:
    out = tmp_path / "cand.jsonl"
    out.write_text("old\n")
    broken = {"lines": [*RESULT["lines"], {"id": "q1", "response": object(),
                                           "generation": {}}],
              "settings": RESULT["settings"]}
    with pytest.raises(TypeError):
        write_responses(out, broken)
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cand.jsonl"]


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    requests = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        data = json.dumps({"choices": [{"message": {"content": "ok"}}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("out", ["outdir", "nosuch/dir/g.jsonl", "suite.jsonl"])
def test_generate_with_a_bad_out_exits_2_naming_out(tmp_path: Path, endpoint: str,
                                                    out: str) -> None:
    suite = _suite(tmp_path / "suite.jsonl")
    (tmp_path / "outdir").mkdir()
    result = CliRunner().invoke(app, ["generate", "--suite", str(suite), "--endpoint",
                                      endpoint, "--endpoint-model", "m", "--out",
                                      str(tmp_path / out), "--no-cache"])
    assert result.exit_code == 2, result.output
    assert f"error: {tmp_path / out}, field '--out': " in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outdir", "suite.jsonl"]
    assert not any((tmp_path / "outdir").iterdir())
    assert json.loads(suite.read_text())["prompt"] == "p0"  # the suite is intact


def test_the_demo_report_is_written_through_a_temporary_file_of_its_own(
        tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    other = tmp_path / "report.tmp"  # the fixed name an earlier version used
    other.write_text("another run's report")
    assert write_report(path, {}, {}) == path
    assert path.read_text().startswith("<!doctype html>")
    assert other.read_text() == "another run's report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.tmp"]
    # a failure (here: a folder in the way) leaves no temporary file behind
    blocked = tmp_path / "blocked"
    (blocked / "report.html").mkdir(parents=True)
    (blocked / "report.html" / "x").write_text("")
    with pytest.raises(InputError) as err:  # refused before anything is written
        write_report(blocked / "report.html", {}, {})
    assert err.value.file == str(blocked / "report.html")
    assert sorted(p.name for p in blocked.iterdir()) == ["report.html"]


def test_a_bad_out_is_refused_before_any_answer_is_asked_for(tmp_path: Path,
                                                             endpoint: str) -> None:
    suite = _suite(tmp_path / "suite.jsonl")
    (tmp_path / "outdir").mkdir()
    before = _Echo.requests
    result = CliRunner().invoke(app, ["generate", "--suite", str(suite), "--endpoint",
                                      endpoint, "--endpoint-model", "m", "--out",
                                      str(tmp_path / "outdir"), "--no-cache"])
    assert result.exit_code == 2, result.output
    assert _Echo.requests == before


@pytest.mark.parametrize(("option", "value"), [("--temperature", "nan"),
                                               ("--temperature", "inf"),
                                               ("--top-p", "nan")])
def test_a_decoder_setting_that_is_not_finite_is_refused(tmp_path: Path, endpoint: str,
                                                         option: str, value: str) -> None:
    suite = _suite(tmp_path / "suite.jsonl")
    before = _Echo.requests
    result = CliRunner().invoke(app, ["generate", "--suite", str(suite), "--endpoint",
                                      endpoint, "--endpoint-model", "m", "--out",
                                      str(tmp_path / "g.jsonl"), "--no-cache",
                                      option, value])
    assert result.exit_code == 2, result.output
    if value == "inf":  # the option's range lets it through (click refuses nan itself)
        assert f"field '{option}': must be a finite number" in result.output
    assert _Echo.requests == before and not (tmp_path / "g.jsonl").exists()
