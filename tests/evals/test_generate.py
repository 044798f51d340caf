"""Generation against a tiny loopback OpenAI-compatible server; the stratified sampler."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hilt.evals.files import SuiteItem, parse_responses
from hilt.evals.generate import (
    EndpointConfig,
    GenerationError,
    default_cache_dir,
    generate,
    is_retryable,
    write_responses,
)
from hilt.evals.sampling import stratified_sample

# 200 replies that are not chat completions
MALFORMED: dict[str, Any] = {
    "no-choices": {"choices": []},
    "a-list": [1],
    "no-message": {"choices": [{"text": "legacy completion"}]},
    "choice-not-object": {"choices": ["hi"]},
    "no-key": {"id": "x"},
}


class _FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: _FakeServer

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length))
        prompt = body["messages"][-1]["content"]
        with self.server.lock:
            self.server.calls[prompt] += 1
            self.server.bodies.append(body)
            self.server.authorization.append(self.headers.get("authorization"))
            count = self.server.calls[prompt]
        if prompt.startswith("status-") and count == 1:  # e.g. "status-507": once, then 200
            return self._send(int(prompt.removeprefix("status-")), {"error": "once"})
        if prompt == "flaky" and count == 1:
            return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        if prompt == "flaky" and count == 2:
            return self._send(503, {"error": "busy"})
        if prompt == "broken":
            return self._send(400, {"error": "bad request"})
        if prompt in MALFORMED:
            return self._send(200, MALFORMED[prompt])
        if prompt == "silent":
            return self._send(200, {"choices": [{"message": {"role": "assistant",
                                                             "content": None}}]})
        answer = f"echo: {prompt} (t={body.get('temperature')})"
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": answer}}]})

    def _send(self, status: int, payload: Any,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[_FakeServer]:
    srv = _FakeServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _items(prompts: list[str]) -> list[SuiteItem]:
    return [SuiteItem(f"i{n}", p, "s", "comply", n + 1) for n, p in enumerate(prompts)]


def _config(srv: _FakeServer, **kwargs: Any) -> EndpointConfig:
    host, port = str(srv.server_address[0]), int(srv.server_address[1])
    return EndpointConfig(base_url=f"http://{host}:{port}/v1", model="tiny",
                          backoff_base_s=0.01, timeout_s=5, **kwargs)


def test_generates_retries_caches_and_records_settings(server: _FakeServer, tmp_path: Path
                                                       ) -> None:
    items = _items([f"p{n}" for n in range(12)] + ["flaky"])
    config = _config(server, concurrency=4, requests_per_second=200,
                     decoder={"temperature": 0.0, "max_tokens": 16, "seed": 1})
    first = generate(items, config, cache_dir=tmp_path / "cache")
    assert first["stats"] == {"requests": 13, "cached": 0, "attempts": 15}
    assert server.calls["flaky"] == 3
    assert first["lines"][0]["response"] == "echo: p0 (t=0.0)"
    assert all(b["max_tokens"] == 16 and b["seed"] == 1 for b in server.bodies)
    again = generate(items, config, cache_dir=tmp_path / "cache")
    assert again["stats"]["cached"] == 13 and again["stats"]["requests"] == 0
    assert [x["response"] for x in again["lines"]] == [x["response"] for x in first["lines"]]
    # Another decoder setting is another cache key: the endpoint is asked again.
    warmer = _config(server, decoder={"temperature": 0.7, "max_tokens": 16, "seed": 1})
    third = generate(items[:1], warmer, cache_dir=tmp_path / "cache")
    assert third["stats"]["requests"] == 1 and "t=0.7" in third["lines"][0]["response"]
    out = tmp_path / "cand.jsonl"
    write_responses(out, first)
    parsed = parse_responses(out, items, "suite.jsonl")
    assert parsed["i0"].response == "echo: p0 (t=0.0)"
    line = json.loads(out.read_text().splitlines()[0])
    assert line["generation"]["settings"]["decoder"]["seed"] == 1


def test_another_endpoint_is_another_cache_key(server: _FakeServer, tmp_path: Path) -> None:
    # a candidate and a reference served under one model name on two ports must not
    # share answers through a shared cache
    other = _FakeServer()
    thread = threading.Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        items = _items(["p0", "p1"])
        first = generate(items, _config(server), cache_dir=tmp_path / "cache")
        second = generate(items, _config(other), cache_dir=tmp_path / "cache")
        assert second["stats"]["requests"] == 2 and second["stats"]["cached"] == 0
        assert other.calls == {"p0": 1, "p1": 1}
        endpoints = {run["settings"]["endpoint"] for run in (first, second)}
        assert len(endpoints) == 2
    finally:
        other.shutdown()
        other.server_close()
        thread.join(timeout=5)


def test_an_answer_without_text_is_an_error_not_none(server: _FakeServer,
                                                      tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="without text"):
        generate(_items(["silent"]), _config(server), cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.json"))  # nothing cached


def test_non_retryable_error_fails_fast(server: _FakeServer) -> None:
    with pytest.raises(GenerationError, match="400"):
        generate(_items(["broken"]), _config(server))
    assert server.calls["broken"] == 1


def test_gives_up_after_max_retries() -> None:
    config = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="x", max_retries=2,
                            backoff_base_s=0.001, timeout_s=1)
    with pytest.raises(GenerationError, match="3 attempts"):
        generate(_items(["p"]), config)


def test_stratified_sample_is_proportional_reproducible_and_floored() -> None:
    ids = [f"i{n}" for n in range(1000)]
    strata = ["big"] * 900 + ["small"] * 95 + ["tiny"] * 5
    sample = stratified_sample(ids, strata, budget=100, min_per_stratum=3, seed=4)
    per = Counter(s.stratum for s in sample)
    # The floor of 3 comes out of the big strata's shares: never more than the budget.
    assert per == {"big": 88, "small": 9, "tiny": 3}
    assert {s.inclusion_probability for s in sample if s.stratum == "tiny"} == {0.6}
    assert len({s.id for s in sample}) == len(sample)
    assert sample == stratified_sample(ids, strata, budget=100, min_per_stratum=3, seed=4)
    assert sample != stratified_sample(ids, strata, budget=100, min_per_stratum=3, seed=5)
    # Horvitz–Thompson: weights sum back to the population size.
    assert sum(1 / s.inclusion_probability for s in sample) == pytest.approx(1000)


@pytest.mark.parametrize("prompt", sorted(MALFORMED))
def test_a_malformed_reply_is_one_error_line_and_exit_2(server: _FakeServer, tmp_path: Path,
                                                        prompt: str) -> None:
    from typer.testing import CliRunner

    from hilt.cli import app

    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"id": "a", "prompt": prompt, "slice": "s",
                                 "expect": "comply"}) + "\n")
    host, port = str(server.server_address[0]), int(server.server_address[1])
    result = CliRunner().invoke(app, ["generate", "--suite", str(suite), "--endpoint",
                                      f"http://{host}:{port}/v1", "--endpoint-model", "m",
                                      "--out", str(tmp_path / "out.jsonl"),
                                      "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: endpoint answered")
    assert server.calls[prompt] == 1  # not retried: the endpoint answered, wrongly
    assert not (tmp_path / "out.jsonl").exists()
    assert not list((tmp_path / "cache").glob("*.json"))


def test_every_5xx_but_501_and_505_is_retried_and_4xx_only_when_transient() -> None:
    retried = {code for code in range(400, 600) if is_retryable(code)}
    assert retried == {408, 409, 425, 429} | (set(range(500, 600)) - {501, 505})


@pytest.mark.parametrize("status", [500, 507, 508, 520, 599, 408, 425])
def test_a_transient_status_is_retried_then_answered(server: _FakeServer,
                                                     status: int) -> None:
    result = generate(_items([f"status-{status}"]), _config(server))
    assert server.calls[f"status-{status}"] == 2
    assert result["stats"]["attempts"] == 2
    assert result["lines"][0]["response"].startswith(f"echo: status-{status}")


@pytest.mark.parametrize("status", [501, 505, 400, 401, 404, 422])
def test_a_permanent_status_fails_without_retry(server: _FakeServer, status: int) -> None:
    with pytest.raises(GenerationError, match=f"answered {status}"):
        generate(_items([f"status-{status}"]), _config(server))
    assert server.calls[f"status-{status}"] == 1


def _cli(server: _FakeServer, suite: Path, out: Path, *extra: str) -> Any:
    from typer.testing import CliRunner

    from hilt.cli import app

    host, port = str(server.server_address[0]), int(server.server_address[1])
    return CliRunner().invoke(app, ["generate", "--suite", str(suite), "--endpoint",
                                    f"http://{host}:{port}/v1", "--endpoint-model", "m",
                                    "--out", str(out), *extra])


def _suite(path: Path, prompts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{n}", "prompt": p, "slice": "s",
                                        "expect": "comply"}) + "\n"
                            for n, p in enumerate(prompts)))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HILT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_rerun_resumes_from_the_default_cache_under_hilt_home(
        server: _FakeServer, tmp_path: Path, home: Path) -> None:
    assert default_cache_dir() == home / "cache" / "generate"
    first = _cli(server, _suite(tmp_path / "a.jsonl", ["p0", "p1"]), tmp_path / "a.out")
    assert first.exit_code == 0, first.output
    assert len(list((home / "cache" / "generate").glob("*.json"))) == 2
    # a run over more prompts asks only for the ones not answered yet
    more = _cli(server, _suite(tmp_path / "b.jsonl", ["p0", "p1", "p2"]), tmp_path / "b.out")
    assert more.exit_code == 0, more.output
    assert json.loads(more.stdout)["stats"] == {"requests": 1, "cached": 2, "attempts": 1}
    assert server.calls == {"p0": 1, "p1": 1, "p2": 1}
    # --no-cache asks for every answer and stores none
    fresh = _cli(server, _suite(tmp_path / "c.jsonl", ["p0", "p3"]), tmp_path / "c.out",
                 "--no-cache")
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.stdout)["stats"]["requests"] == 2
    assert server.calls["p0"] == 2
    assert len(list((home / "cache" / "generate").glob("*.json"))) == 3


def test_cache_options_that_cannot_work_are_refused(server: _FakeServer, tmp_path: Path,
                                                    home: Path) -> None:
    suite = _suite(tmp_path / "s.jsonl", ["p0"])
    both = _cli(server, suite, tmp_path / "o", "--no-cache", "--cache-dir", str(tmp_path))
    assert both.exit_code == 2 and "--no-cache" in both.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    under_a_file = _cli(server, suite, tmp_path / "o", "--cache-dir", str(blocker / "c"))
    assert under_a_file.exit_code == 2, under_a_file.output
    assert "field '--cache-dir'" in under_a_file.output
    assert len(under_a_file.output.strip().splitlines()) == 1
    assert not server.calls and not (tmp_path / "o").exists()


def test_an_unreadable_cache_entry_is_asked_for_again(server: _FakeServer,
                                                      tmp_path: Path) -> None:
    items = _items(["p0"])
    first = generate(items, _config(server), cache_dir=tmp_path / "cache")
    entry = tmp_path / "cache" / f"{first['lines'][0]['generation']['cache_key']}.json"
    entry.write_text('{"respon')  # cut short
    again = generate(items, _config(server), cache_dir=tmp_path / "cache")
    assert again["stats"]["requests"] == 1 and server.calls["p0"] == 2
    assert json.loads(entry.read_text())["response"] == first["lines"][0]["response"]


@pytest.mark.parametrize("value", [None, "", "  "])
def test_an_api_key_variable_that_is_unset_or_empty_is_refused(
        server: _FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("HILT_TEST_KEY", raising=False)
    else:
        monkeypatch.setenv("HILT_TEST_KEY", value)
    result = _cli(server, _suite(tmp_path / "s.jsonl", ["p0"]), tmp_path / "o",
                  "--api-key-env", "HILT_TEST_KEY", "--no-cache")
    assert result.exit_code == 2, result.output
    assert "field '--api-key-env'" in result.output and "HILT_TEST_KEY" in result.output
    assert not server.calls and not (tmp_path / "o").exists()


def test_the_api_key_variable_is_sent_as_a_bearer_token(
        server: _FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_TEST_KEY", "sk-123")
    result = _cli(server, _suite(tmp_path / "s.jsonl", ["p0"]), tmp_path / "o",
                  "--api-key-env", "HILT_TEST_KEY", "--no-cache")
    assert result.exit_code == 0, result.output
    assert server.authorization == ["Bearer sk-123"]
