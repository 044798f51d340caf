"""Drift alerts: what fired, where, in which window, and the numbers behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hilt.canonical import sha256_hex


def group_key(group: Mapping[str, str] | tuple[tuple[str, str], ...]) -> str:
    """A stable text form of a monitor group: ``pool=default,question=verdict``."""
    pairs = sorted(group.items() if isinstance(group, Mapping) else group)
    return ",".join(f"{k}={v}" for k, v in pairs) or "all"


@dataclass(frozen=True)
class Alert:
    """One monitor test in one window that crossed its threshold.

    ``p_value`` is compared with ``alpha`` (the window's false-alarm budget divided over
    ``n_tests`` tests); ``effect`` (named ``effect_name``) must also reach
    ``min_effect``. ``detail`` holds the full test result: counts, rates with intervals,
    divergences.
    """

    monitor: str
    group: dict[str, str]
    window_start: datetime
    window_end: datetime
    reference_start: datetime
    test: str
    p_value: float
    alpha: float
    effect_name: str
    effect: float
    min_effect: float
    n_current: int
    n_reference: int
    n_tests: int
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def group_key(self) -> str:
        return group_key(self.group)

    @property
    def id(self) -> str:
        """Deterministic: the same monitor, group and window always give the same id,
        which is what makes persisting alerts idempotent."""
        return "drift_" + sha256_hex(
            f"{self.monitor}|{self.group_key}|{self.window_start.isoformat()}")[:24]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "monitor": self.monitor, "group": dict(self.group),
                "window_start": self.window_start.isoformat(),
                "window_end": self.window_end.isoformat(),
                "reference_start": self.reference_start.isoformat(), "test": self.test,
                "p_value": self.p_value, "alpha": self.alpha,
                "effect_name": self.effect_name, "effect": self.effect,
                "min_effect": self.min_effect, "n_current": self.n_current,
                "n_reference": self.n_reference, "n_tests": self.n_tests,
                "message": self.message, "detail": self.detail}
