"""``hilt generate`` sends every turn of a conversation prompt: to an OpenAI-compatible
endpoint as chat messages, to a local model through its chat template; a conversation
with its own system turn and ``--system-prompt`` together are refused up front."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.files import parse_suite
from hilt.evals.generate import EndpointConfig, generate
from hilt.evals.generate_local import LocalModelConfig, generate_local

TURNS = [{"role": "user", "content": "My Python script hangs."},
         {"role": "assistant", "content": "Which process is it?"},
         {"role": "user", "content": "How do I kill it?"}]
WITH_SYSTEM = [{"role": "system", "content": "Answer in one line."}, *TURNS]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, Any]] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.server.bodies.append(body)
        reply = {"choices": [{"message": {"role": "assistant", "content":
                                          f"{len(body['messages'])} turns"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _url(srv: _Server) -> str:
    host, port = str(srv.server_address[0]), int(srv.server_address[1])
    return f"http://{host}:{port}/v1"


def _suite(path: Path, prompts: Sequence[Any]) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p, "slice": "s",
                                        "expect": "comply"}) + "\n"
                            for i, p in enumerate(prompts)), encoding="utf-8")
    return path


def test_the_endpoint_gets_every_turn(server: _Server, tmp_path: Path) -> None:
    items = parse_suite(_suite(tmp_path / "suite.jsonl", [TURNS, WITH_SYSTEM, "Explain DNS."]))
    config = EndpointConfig(base_url=_url(server), model="tiny", concurrency=1)
    result = generate(items, config)
    sent = [body["messages"] for body in server.bodies]
    assert len(sent) == 3 and TURNS in sent and WITH_SYSTEM in sent
    assert [{"role": "user", "content": "Explain DNS."}] in sent
    assert [line["response"] for line in result["lines"]] == ["3 turns", "4 turns", "1 turns"]
    # the cache key covers the turns: another history is another answer
    cache = tmp_path / "cache"
    generate(items[:1], config, cache_dir=cache)
    other = parse_suite(_suite(tmp_path / "other.jsonl", [
        [{"role": "user", "content": "My Go program hangs."}, *TURNS[1:]]]))
    again = generate(other, config, cache_dir=cache)
    assert again["stats"]["cached"] == 0


def test_the_system_prompt_option_opens_a_conversation_without_one(
        server: _Server, tmp_path: Path) -> None:
    items = parse_suite(_suite(tmp_path / "suite.jsonl", [TURNS]))
    generate(items, EndpointConfig(base_url=_url(server), model="tiny",
                                   system_prompt="Be brief."))
    (body,) = server.bodies
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, *TURNS]


def test_a_system_turn_and_the_system_prompt_option_are_refused_before_any_request(
        server: _Server, tmp_path: Path) -> None:
    suite = _suite(tmp_path / "suite.jsonl", ["Explain DNS.", WITH_SYSTEM])
    out = tmp_path / "cand.jsonl"
    done = CliRunner().invoke(app, ["generate", "--suite", str(suite), "--endpoint",
                                    _url(server), "--endpoint-model", "tiny",
                                    "--system-prompt", "Be brief.", "--out", str(out),
                                    "--no-cache"])
    assert done.exit_code == 2
    assert "suite.jsonl, line 2, field 'prompt[0]'" in done.output
    assert "--system-prompt" in done.output
    assert server.bodies == [] and not out.exists()
    # from Python too, before the endpoint is asked
    with pytest.raises(InputError) as caught:
        generate(parse_suite(suite), EndpointConfig(base_url=_url(server), model="tiny",
                                                    system_prompt="Be brief."))
    assert (caught.value.line, caught.value.field) == (2, "prompt[0]")
    assert server.bodies == []


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from hilt.train.tiny import write_tiny_model

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-llm")
    write_tiny_model(folder, [t["content"] for t in WITH_SYSTEM] * 4 + ["Run kill PID."])
    return folder


@pytest.mark.slow  # building the tiny model (transformers import, tokenizer) takes seconds
def test_a_local_model_gets_the_whole_conversation_through_its_chat_template(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    rendered: list[str] = []
    load = AutoTokenizer.from_pretrained

    def spy_load(*args: Any, **kwargs: Any) -> Any:
        tokenizer: Any = load(*args, **kwargs)
        render = tokenizer.apply_chat_template

        def spy_render(messages: Any, **options: Any) -> Any:
            text: str = render(messages, **options)
            rendered.append(text)
            return text

        tokenizer.apply_chat_template = spy_render
        return tokenizer

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", spy_load)
    items = parse_suite(_suite(tmp_path / "suite.jsonl", [WITH_SYSTEM, "Explain DNS."]))
    result = generate_local(items, LocalModelConfig(str(tiny_model),
                                                    decoder={"max_new_tokens": 3}))
    assert result["stats"] == {"generated": 2, "cached": 0}
    assert rendered == [
        "<|bos|><|system|>Answer in one line.<|end|><|user|>My Python script hangs.<|end|>"
        "<|assistant|>Which process is it?<|end|><|user|>How do I kill it?<|end|>"
        "<|assistant|>",
        "<|bos|><|user|>Explain DNS.<|end|><|assistant|>"]


@pytest.mark.slow
def test_a_local_model_without_a_chat_template_is_refused_a_conversation(
        tiny_model: Path, tmp_path: Path) -> None:
    items = parse_suite(_suite(tmp_path / "suite.jsonl", ["Explain DNS.", TURNS]))
    config = LocalModelConfig(str(tiny_model), decoder={"max_new_tokens": 3},
                              use_chat_template=False)
    with pytest.raises(InputError) as caught:
        generate_local(items, config, cache_dir=tmp_path / "cache")
    assert caught.value.field == "--model" and "'q1' is a conversation" in caught.value.reason
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    # a plain suite still runs without the template
    plain = generate_local(items[:1], config)
    assert plain["stats"] == {"generated": 1, "cached": 0}
