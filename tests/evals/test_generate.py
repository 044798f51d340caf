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
from hilt.evals.generate import EndpointConfig, GenerationError, generate, write_responses
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
            count = self.server.calls[prompt]
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
