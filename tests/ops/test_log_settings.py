"""``HILT_LOG_LEVEL`` and ``HILT_LOG_FORMAT`` are checked before a server or worker
starts: a bad value is one error line naming the variable, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.ops.logs import log_settings

from .climain import run_main


def test_worker_refuses_an_unknown_level(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("HILT_LOG_LEVEL", "verbose")
    code, output = run_main("worker", "--no-periodic", "--db",
                            f"sqlite:///{tmp_path / 'hilt.db'}")
    assert code == 2, output
    assert output.strip().splitlines() == [
        "error: field 'HILT_LOG_LEVEL': 'verbose' is not one of DEBUG, INFO, WARNING, ERROR"]
    assert not (tmp_path / "hilt.db").exists()


def test_worker_refuses_an_unknown_format(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("HILT_LOG_FORMAT", "xml")
    code, output = run_main("worker", "--no-periodic", "--db",
                            f"sqlite:///{tmp_path / 'hilt.db'}")
    assert code == 2, output
    assert "HILT_LOG_FORMAT" in output and "json, text" in output


@pytest.mark.parametrize(("level", "fmt", "expected"), [
    ("", "", ("INFO", True)), ("debug", "JSON", ("DEBUG", True)),
    ("Warning", "Text", ("WARNING", False))])
def test_values_are_read_in_any_case(monkeypatch: pytest.MonkeyPatch, level: str, fmt: str,
                                     expected: tuple[str, bool]) -> None:
    monkeypatch.setenv("HILT_LOG_LEVEL", level)
    monkeypatch.setenv("HILT_LOG_FORMAT", fmt)
    assert log_settings() == expected


def test_the_app_refuses_them_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import FastAPI

    from hilt.ops import install

    monkeypatch.setenv("HILT_LOG_LEVEL", "loud")
    with pytest.raises(InputError, match="HILT_LOG_LEVEL"):
        install(FastAPI(), scheduler=False)


def test_serve_refuses_an_unknown_level_before_starting(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(a))
    monkeypatch.setenv("HILT_LOG_LEVEL", "verbose")
    code, output = run_main("serve", "--port", "0", "--db",
                            f"sqlite:///{tmp_path / 'hilt.db'}")
    assert code == 2, output
    assert "HILT_LOG_LEVEL" in output and not started
