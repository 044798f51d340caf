"""Candidate outputs from any OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp …).

* concurrency: at most ``concurrency`` requests in flight (an asyncio semaphore);
* rate limit: requests start at least ``1 / requests_per_second`` apart;
* retries: on 408, 409, 425, 429, every 5xx but 501 and 505, and transport errors,
  exponential backoff with full jitter (``base · 2^attempt · U(0,1)``, AWS Architecture
  Blog 2015), honouring ``Retry-After``;
* decoder settings (model, temperature, top_p, max_tokens, seed, …) go into every
  response line and the run manifest;
* cache: one JSON file per response, named by sha256 over the canonical (messages,
  settings), so a rerun with the same prompt and settings never calls the endpoint again
  and a change of any setting never reuses a stale answer.

Output lines follow contract 3 (``{"id", "response"}``) plus ``generation`` metadata.
A local transformers model is served by :mod:`hilt.evals.generate_local` instead.
The output path is checked before anything is generated (:func:`check_responses_out`)
and written through a temporary file of its own beside it (:func:`write_responses`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilt.canonical import content_hash
from hilt.config import hilt_home
from hilt.errors import HiltError, InputError
from hilt.evals.files import SuiteItem

# 4xx answers that say "not now" rather than "never"; other 4xx are the request's fault.
RETRY_4XX = frozenset({408, 409, 425, 429})
# 5xx answers that no retry can change: the server lacks the method or the HTTP version.
PERMANENT_5XX = frozenset({501, 505})


def is_retryable(status: int) -> bool:
    """Whether an HTTP status is worth another attempt: a server-side failure (any 5xx
    but the permanent ones, so 507, 520–529 behind a proxy … count too) or a 4xx that
    asks the client to come back later."""
    if 500 <= status <= 599:
        return status not in PERMANENT_5XX
    return status in RETRY_4XX


@dataclass(frozen=True)
class EndpointConfig:
    base_url: str
    model: str
    api_key: str | None = None
    system_prompt: str | None = None
    decoder: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.0,
                                                             "max_tokens": 512})
    concurrency: int = 8
    requests_per_second: float | None = None
    max_retries: int = 5
    backoff_base_s: float = 0.5
    timeout_s: float = 60.0

    def settings(self) -> dict[str, Any]:
        """What determines a response: recorded and part of the cache key. The endpoint
        is part of it: two servers may serve different models under one model name (a
        candidate and a reference), and a shared cache must not hand one the other's
        answers."""
        return {"endpoint": self.base_url.rstrip("/"), "model": self.model,
                "system_prompt": self.system_prompt, "decoder": dict(self.decoder)}


def messages_for(item: SuiteItem, system_prompt: str | None) -> list[dict[str, str]]:
    """The chat messages sent for ``item``: the system prompt (if any), then the plain
    prompt as one user turn or every turn of the conversation, so the model answers the
    conversation as a chat model is served it. A conversation with a system turn of its
    own is not given a second one: :func:`check_system_prompt` refuses that pair first."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, *item.chat()]


def check_system_prompt(items: Sequence[SuiteItem], system_prompt: str | None,
                        suite: str | Path | None = None) -> None:
    """Refuse ``--system-prompt`` for a suite with a conversation that has a system turn.

    Neither choice is safe to make silently: putting both before the model sends two
    system messages (which many chat templates refuse or merge), and keeping only the
    suite's would record a system prompt in the settings that those items never saw."""
    if not system_prompt:
        return
    for item in items:
        index = next((i for i, m in enumerate(item.messages or ()) if m.role == "system"),
                     None)
        if index is not None:
            raise InputError("this conversation has its own system turn and "
                             "--system-prompt gives another: drop --system-prompt or the "
                             "suite's system turns", file=None if suite is None
                             else str(suite), line=item.line, field=f"prompt[{index}]")


def cache_key(messages: list[dict[str, str]], settings: dict[str, Any]) -> str:
    return content_hash({"messages": messages, "settings": settings})


def read_cached(path: Path | None) -> str | None:
    """The cached answer at ``path``, or None for a miss. A file that is not a cache
    entry (cut short by a full disk, edited by hand) is a miss too: the answer is asked
    for again and the entry rewritten, never a crash of a run that could resume."""
    if path is None or not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    text = entry.get("response") if isinstance(entry, dict) else None
    return text if isinstance(text, str) else None


def write_cached(path: Path, text: str, settings: dict[str, Any]) -> None:
    """Store one answer atomically; the temporary name is the process's own, so two
    runs sharing the cache never write into one temporary file."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"response": text, "settings": settings}), encoding="utf-8")
    tmp.replace(path)


def default_cache_dir() -> Path:
    """Where ``hilt generate`` caches answers unless told otherwise, so a rerun after a
    crash resumes instead of asking the endpoint (or the model) again."""
    return hilt_home() / "cache" / "generate"


class _RateLimiter:
    def __init__(self, per_second: float | None) -> None:
        self.interval = 0.0 if not per_second else 1.0 / per_second
        self.next_start = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            delay = self.next_start - now
            self.next_start = max(now, self.next_start) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class GenerationError(HiltError):
    """The endpoint failed for good (after retries): the CLI prints it and exits 2."""


def _reply_text(data: Any) -> str:
    """The first choice's message content of a chat-completions reply.

    A 200 reply of another shape (no choices, a list, a message without text) is the
    endpoint not doing what it is asked, not a transient failure: one clear error."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise GenerationError("endpoint answered 200 without choices "
                              f"(reply: {json.dumps(data)[:200]})")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):  # e.g. null: never store it as "None"
        raise GenerationError(f"endpoint answered without text content "
                              f"({type(content).__name__}; reply: {json.dumps(data)[:200]})")
    return content


async def _complete(client: Any, config: EndpointConfig, messages: list[dict[str, str]],
                    limiter: _RateLimiter) -> tuple[str, int]:
    """(text, attempts) for one prompt, retrying transient failures."""
    import httpx

    body = {"model": config.model, "messages": messages, **config.decoder}
    for attempt in range(config.max_retries + 1):
        await limiter.wait()
        retry_after: float | None = None
        try:
            response = await client.post("/chat/completions", json=body)
            if response.status_code == 200:
                return _reply_text(response.json()), attempt + 1
            if not is_retryable(response.status_code):
                raise GenerationError(f"endpoint answered {response.status_code}: "
                                      f"{response.text[:200]}")
            header = response.headers.get("retry-after")
            retry_after = float(header) if header and header.replace(".", "").isdigit() \
                else None
        except (httpx.TransportError, json.JSONDecodeError) as exc:
            if attempt == config.max_retries:
                raise GenerationError(f"giving up after {attempt + 1} attempts: {exc!r}") \
                    from exc
        if attempt == config.max_retries:
            break
        backoff = config.backoff_base_s * (2 ** attempt) * random.random()
        await asyncio.sleep(max(backoff, retry_after or 0.0))
    raise GenerationError(f"giving up after {config.max_retries + 1} attempts")


async def generate_async(items: Sequence[SuiteItem], config: EndpointConfig,
                         cache_dir: str | Path | None = None) -> dict[str, Any]:
    import httpx

    check_system_prompt(items, config.system_prompt)
    settings = config.settings()
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    semaphore = asyncio.Semaphore(config.concurrency)
    limiter = _RateLimiter(config.requests_per_second)
    stats = {"requests": 0, "cached": 0, "attempts": 0}
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}

    async with httpx.AsyncClient(base_url=config.base_url.rstrip("/"), headers=headers,
                                 timeout=config.timeout_s) as client:
        async def one(item: SuiteItem) -> dict[str, Any]:
            messages = messages_for(item, config.system_prompt)
            key = cache_key(messages, settings)
            path = cache / f"{key}.json" if cache is not None else None
            cached = read_cached(path)
            if cached is not None:
                stats["cached"] += 1
                return {"id": item.id, "response": cached,
                        "generation": {"cache_key": key, "cached": True}}
            async with semaphore:
                text, attempts = await _complete(client, config, messages, limiter)
            stats["requests"] += 1
            stats["attempts"] += attempts
            if path is not None:
                write_cached(path, text, settings)
            return {"id": item.id, "response": text,
                    "generation": {"cache_key": key, "cached": False}}

        lines = await asyncio.gather(*(one(item) for item in items))
    return {"lines": list(lines), "settings": settings, "stats": stats}


def generate(items: Sequence[SuiteItem], config: EndpointConfig,
             cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Generate one response per suite item; returns lines, settings and call counts."""
    return asyncio.run(generate_async(items, config, cache_dir))


def check_responses_out(out: str | Path, *, suite: str | Path | None = None) -> Path:
    """The response file to write (``hilt generate --out``), checked before any answer
    is asked for: a folder, a folder that does not exist or cannot be written, the
    suite file itself and any existing suite file (which the responses would replace)
    are refused, naming ``--out``."""
    path = Path(out)
    if path.is_dir():
        raise InputError("is a folder, not a file", file=str(path), field="--out")
    parent = path.parent
    if not parent.exists():
        raise InputError(f"folder {parent} does not exist", file=str(path), field="--out")
    if not parent.is_dir():
        raise InputError(f"{parent} is not a folder", file=str(path), field="--out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"folder {parent} is not writable", file=str(path), field="--out")
    if suite is not None and path.exists() and Path(suite).exists() \
            and os.path.samefile(path, suite):
        raise InputError("is the --suite file: the responses would replace the suite",
                         file=str(path), field="--out")
    if _holds_a_suite(path):
        raise InputError("holds a suite (its first line has a prompt and an expect), not "
                         "responses: the responses would replace it", file=str(path),
                         field="--out")
    return path


def _holds_a_suite(path: Path) -> bool:
    """Whether the existing file ``path`` reads as a suite: its first line is an object
    with ``prompt`` and ``expect``, keys no response line may hold."""
    if not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            first = b""
            while not first.strip():
                first = handle.readline(1 << 20)
                if not first:
                    return False
        obj = json.loads(first.decode("utf-8").removeprefix("\ufeff"))
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and "prompt" in obj and "expect" in obj


def write_responses(path: str | Path, result: dict[str, Any], *,
                    suite: str | Path | None = None) -> None:
    """Contract-3 response file, each line carrying the decoder settings it came from.

    The path is checked as :func:`check_responses_out` does (``suite``: the suite file,
    which must not be replaced). The lines go to a temporary file of a unique name
    beside ``path``, renamed over it once complete; a failure removes it, so ``path``
    is the old file or the whole new one, and two runs never share a temporary file.
    """
    from hilt.quality.csv_io import write_text_atomic

    path = check_responses_out(path, suite=suite)
    text = "".join(
        json.dumps({**line, "generation": {**line["generation"],
                                           "settings": result["settings"]}},
                   ensure_ascii=False) + "\n"
        for line in result["lines"])
    write_text_atomic(path, text, field="--out")
