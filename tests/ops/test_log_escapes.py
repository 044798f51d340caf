"""JSON log lines carry no terminal escape codes: a library that colours its messages
(uvicorn does, for a terminal) leaves plain text in the JSON ``message``."""

from __future__ import annotations

import io
import json
import logging

from hilt.ops.logs import JsonFormatter

ESC = "\x1b"


def _line(record: logging.LogRecord) -> tuple[str, dict[str, object]]:
    text = JsonFormatter().format(record)
    return text, json.loads(text)


def test_a_coloured_message_is_logged_as_plain_text() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.ops.coloured")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # what uvicorn logs at start-up, colours and all (click.style)
        logger.warning("\x1b[32mINFO\x1b[0m:     Uvicorn running on \x1b[1m%s\x1b[0m",
                       "http://127.0.0.1:8000",
                       extra={"color_message": "Uvicorn running on \x1b[1m%s\x1b[0m",
                              "client": "\x1b[36m127.0.0.1\x1b[0m"})
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert ESC not in text and "\\u001b" not in text, text
    line = json.loads(text)
    assert line["message"] == "INFO:     Uvicorn running on http://127.0.0.1:8000"
    assert line["client"] == "127.0.0.1"
    assert "color_message" not in line  # it only repeats the message, coloured


def test_escapes_in_an_exception_and_nested_extras_are_removed() -> None:
    try:
        raise ValueError("\x1b[31mbad\x1b[0m value")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s",
                               ("\x1b]8;;http://a\x1b\\link\x1b]8;;\x1b\\",), exc_info)
    record.details = {"steps": ["\x1b[2K\x1b[1Gstep 1"], "n": 3}
    text, line = _line(record)
    assert ESC not in text and "\\u001b" not in text, text
    assert line["message"] == "failed: link"
    assert line["details"] == {"steps": ["step 1"], "n": 3}
    assert "ValueError: bad value" in str(line["exception"])


def test_strip_escapes_keeps_plain_text_as_it_is() -> None:
    from hilt.ops.logs import strip_escapes

    assert strip_escapes("plain, ünïcode [1m not an escape") == \
        "plain, ünïcode [1m not an escape"
    assert strip_escapes("\x1b[1;38;5;208mhot\x1b[m \x1bMup\x1b") == "hot up"
