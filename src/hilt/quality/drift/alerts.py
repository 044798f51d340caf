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
    divergences; ``intervals`` (:func:`alert_intervals`) the figures the alert is about
    with their intervals, short enough to list without ``detail``.
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
                "message": self.message,
                "intervals": alert_intervals(self.effect_name, self.detail),
                "detail": self.detail}


DIVERGENCE_NOTE = ("PSI and JSD are descriptive: they have no interval and are biased "
                   "upward (about 2(K-1)/n and (K-1)/(4n ln 2) bits without any drift)")


def _figure(value: Any, bounds: Any, n: Any = None) -> dict[str, Any] | None:
    if value is None or not isinstance(bounds, list | tuple) or len(bounds) != 2:
        return None
    out = {"value": value, "ci_low": bounds[0], "ci_high": bounds[1]}
    if n is not None:
        out["n"] = n
    return out


def moved_category(current: Mapping[str, Any], reference: Mapping[str, Any]) -> str | None:
    """The category whose share moved most between two ``category -> (share, low,
    high)`` mappings (the first such in order on ties)."""
    common = [c for c in current if c in reference]
    if not common:
        return None
    return max(common, key=lambda c: abs(current[c][0] - reference[c][0]))


def alert_intervals(effect_name: str, detail: Mapping[str, Any] | None
                    ) -> dict[str, Any] | None:
    """The figures an alert is about, each ``{value, ci_low, ci_high[, n]}`` at 95 %:

    - rate and agreement alerts: ``reference``, ``current`` (Wilson; for agreement the
      item-level Wilson over items) and ``change`` (Newcombe / MOVER interval of the
      difference);
    - shift alerts: the ``category`` whose share moved most, its ``reference`` and
      ``current`` share (Wilson), and a ``note`` that PSI and JSD are descriptive.

    ``None`` when ``detail`` does not hold them (e.g. alerts stored without detail).
    """
    if not detail:
        return None
    if "current_share_intervals" in detail:
        cur = detail.get("current_share_intervals") or {}
        ref = detail.get("reference_share_intervals") or {}
        moved = moved_category(cur, ref)
        if moved is None:
            return None
        return {"category": moved,
                "reference": _figure(ref[moved][0], ref[moved][1:], detail.get("n_reference")),
                "current": _figure(cur[moved][0], cur[moved][1:], detail.get("n_current")),
                "change": None, "note": DIVERGENCE_NOTE}
    if "reference_rate" in detail:
        values = ("reference_rate", "current_rate", "reference_trials", "current_trials")
    elif "reference_agreement" in detail:
        values = ("reference_agreement", "current_agreement", "reference_items",
                  "current_items")
    else:
        return None
    return {"reference": _figure(detail.get(values[0]), detail.get("reference_ci"),
                                 detail.get(values[2])),
            "current": _figure(detail.get(values[1]), detail.get("current_ci"),
                               detail.get(values[3])),
            "change": _figure(detail.get("change"), detail.get("change_ci"))}
