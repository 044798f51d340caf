"""``HILT_DEBUG``: only ``1``, ``true`` or ``yes`` show a database error's traceback."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.ops.climain import run_main

UNREACHABLE = "postgresql://nobody@127.0.0.1:9/x"


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_debug_off_gives_one_line_and_exit_2(value: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_DEBUG", value)
    code, output = run_main("queue", "stats", "--db", UNREACHABLE)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database:")


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes"])
def test_debug_on_keeps_the_traceback(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HILT_DEBUG", value)
    with pytest.raises(sa.exc.OperationalError):
        run_main("queue", "stats", "--db", UNREACHABLE)
