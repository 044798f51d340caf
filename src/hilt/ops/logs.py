"""Structured JSON logs with request ids.

:class:`RequestIdMiddleware` (plain ASGI, so it adds no per-request task switching)
takes the caller's ``X-Request-ID`` when it looks sane or makes one, stores it in a
context variable that every log record of the request picks up, echoes it in the
response header, and logs one ``request`` line with method, path, status and duration.
:class:`JsonFormatter` writes each record as one JSON object per line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from hilt.errors import InputError

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hilt_request_id", default=None)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message",
                                                                           "asctime"}
access_log = logging.getLogger("hilt.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Terminal escape sequences: CSI (colours, cursor moves: ESC [ ... final byte, or the
# one-byte CSI 0x9b), OSC (titles, hyperlinks: ESC ] ... ended by BEL or ESC \), the
# other two-byte escapes (ESC and one of @-Z \ ^ _), and a lone ESC left over.
_ESCAPES = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
                      r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
                      r"|\x1b[@-Z\\^_]?")
# Extras that only repeat the message with terminal colours (uvicorn's).
_COLOUR_EXTRAS = frozenset({"color_message"})


def strip_escapes(text: str) -> str:
    """``text`` without terminal escape sequences (colour codes and the like)."""
    return _ESCAPES.sub("", text) if ("\x1b" in text or "\x9b" in text) else text


# The line in which SQLAlchemy's errors quote the failed statement's bound values: a
# webhook's signing secret, say, when the insert of its subscription fails.
_SQL_PARAMETERS = re.compile(r"^\[parameters: .*\]$", re.MULTILINE)
SQL_PARAMETERS_HIDDEN = "[parameters hidden]"


def without_sql_parameters(text: str) -> str:
    """``text`` (an error, a traceback) without the statement parameters a database
    error quotes; the statement itself stays."""
    return _SQL_PARAMETERS.sub(SQL_PARAMETERS_HIDDEN, text) if "[parameters: " in text \
        else text


def _clean(text: str) -> str:
    return without_sql_parameters(strip_escapes(text))


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, extras.

    Terminal escape sequences are removed from the message, the exception text and
    string extras: a library that colours its messages for a terminal (uvicorn, click)
    would otherwise put ``\u001b[32m`` codes into what log collectors index and show.
    So are the bound values that a database error quotes (:func:`without_sql_parameters`):
    a request's secret must not reach the log collector because its statement failed."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(), "logger": record.name,
            "message": _clean(record.getMessage())}
        rid = request_id_var.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") \
                    and key not in _COLOUR_EXTRAS:
                out[key] = _plain(value)
        if record.exc_info:
            out["exception"] = _clean(self.formatException(record.exc_info))
        return json.dumps(out, default=str, ensure_ascii=False)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")


def check_log_level(value: str, field: str = "HILT_LOG_LEVEL") -> str:
    """``value`` as a level name (any case); anything else is an :class:`InputError`
    naming ``field``, not a traceback from the logging module."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise InputError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}", field=field)
    return level


def log_settings() -> tuple[str, bool]:
    """``HILT_LOG_LEVEL`` (default ``INFO``) and whether ``HILT_LOG_FORMAT`` (default
    ``json``; ``json`` or ``text``, any case) asks for JSON logs. Checked before a
    server or worker starts, so a typo stops it with one error line (exit 2)."""
    level = check_log_level(os.environ.get("HILT_LOG_LEVEL", "").strip() or "INFO")
    raw = os.environ.get("HILT_LOG_FORMAT", "").strip() or "json"
    if raw.lower() not in LOG_FORMATS:
        raise InputError(f"{raw!r} is not one of {', '.join(LOG_FORMATS)}",
                         field="HILT_LOG_FORMAT")
    return level, raw.lower() == "json"


def configure_from_env() -> None:
    """JSON logs as ``HILT_LOG_FORMAT`` and ``HILT_LOG_LEVEL`` ask (both checked)."""
    level, json_logs = log_settings()
    if json_logs:
        configure_json_logging(level)


def configure_json_logging(level: str = "INFO") -> None:
    """Route hilt's, uvicorn's and APScheduler's loggers to one JSON stream on stderr."""
    level = check_log_level(level, field="level")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # uvicorn's own access line is replaced by the middleware's (it has the request id).
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("apscheduler").setLevel("WARNING")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, header: str = "x-request-id") -> None:
        self.app = app
        self.header = header.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                      if k == self.header), None)
        rid = given if given and _SANE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (self.header, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info("request", extra={
                "method": scope.get("method"), "path": scope.get("path"),
                "status": status["code"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
            request_id_var.reset(token)
