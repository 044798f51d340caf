"""Fixtures of the core tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest

import hilt.access
import hilt.access_tokens

Clock = Callable[[float], None]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Moves the "now" of hilt.access and hilt.access_tokens (wall clock and the cache's
    monotonic clock) on by the given seconds."""
    offset = [0.0]
    real_now, real_monotonic = hilt.access.utcnow, time.monotonic
    for module in (hilt.access, hilt.access_tokens):
        monkeypatch.setattr(module, "utcnow",
                            lambda: real_now() + timedelta(seconds=offset[0]))
    monkeypatch.setattr(hilt.access.time, "monotonic",
                        lambda: real_monotonic() + offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance
