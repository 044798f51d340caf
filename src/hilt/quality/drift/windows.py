r"""Time windows, monitor configuration and the false-alarm budget.

Windows are fixed-width and aligned to the Unix epoch, so the same instant always falls
in the same window whatever day a run happens: a window is identified by its start, and
re-running the monitors over it finds the same alerts (idempotent persistence).

False alarms. Every monitor runs many tests per window (one per rubric version ×
question × pool, per reviewer, per escalation rule). The configured
``false_alarm_rate`` :math:`\alpha_w` is the probability that *one monitor* raises at
least one false alert in *one window* when nothing drifted. It is split over the
:math:`m` tests that monitor runs in that window (Bonferroni), so each test uses
:math:`\alpha_w / m`; by the union bound the monitor's family-wise false-alarm
probability per window is at most :math:`\alpha_w`, and over :math:`N` windows without
drift the number of windows with a false alarm is stochastically at most
:math:`\mathrm{Binomial}(N, \alpha_w)`.

Alternatively ``horizon_windows`` spends a total budget over a horizon: with
``false_alarm_rate`` :math:`\alpha` and horizon :math:`H`, each window gets
:math:`\alpha / H` (Bonferroni alpha spending over windows), so the probability of any
false alarm in :math:`H` windows is at most :math:`\alpha`.

Reference: O. J. Dunn (1961), "Multiple comparisons among means", JASA 56:52–64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MONITORS = ("label_shift", "reviewer_label_shift", "prompt_mix_shift", "agreement",
            "gold_accuracy", "adjudication_rate", "guideline_gap_rate",
            "escalation_rule_hits")


@dataclass(frozen=True)
class DriftConfig:
    """Settings of every monitor (defaults documented in ``docs/drift.md``)."""

    window_hours: float = 24.0
    """Width of one window."""
    reference: str = "baseline"
    """``baseline``: a group's reference is its first ``reference_windows`` windows with
    data (since the rubric version, reviewer or rule appeared, or since the start of the
    runner's ``history_windows``), so slow drift cannot hide by moving the reference
    along with it. ``trailing``: the ``reference_windows`` windows just before the
    current one (follows seasonal change, misses slow drift)."""
    reference_windows: int = 4
    """Windows pooled into the reference."""
    false_alarm_rate: float = 0.01
    """Per monitor and window (or over ``horizon_windows`` when that is set)."""
    horizon_windows: int | None = None
    """Spend ``false_alarm_rate`` over this many windows instead of per window."""
    min_window_n: int = 50
    """No alert unless the current window has at least this many observations ..."""
    min_reference_n: int = 100
    """... and the reference at least this many."""
    min_expected: float = 5.0
    """Chi-square cells with a smaller expected count are pooled (Cochran's rule)."""
    smoothing: float = 0.5
    """Pseudo-count added to every category for the divergences (Jeffreys prior)."""
    min_psi: float = 0.05
    """A shift must also be this large (PSI) to alert: significance alone is not enough
    with large windows, where trivial shifts become significant."""
    min_rate_change: float = 0.02
    """A rate must move by at least this much (absolute) to alert."""
    min_gold_window_n: int = 10
    """Gold answers needed in the current window for the per-reviewer gold monitor."""
    min_gold_reference_n: int = 20
    min_agreement_items: int = 30
    """Items rated at least twice needed in each window for the agreement monitor."""
    lookback_windows: int = 7
    """The store runner evaluates the complete windows of this many most recent windows."""
    history_windows: int = 90
    """The store runner reads data from at most this many windows back (the baseline lies
    within them)."""
    enabled: tuple[str, ...] = MONITORS
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window_hours <= 0:
            raise ValueError("window_hours must be positive")
        if self.reference_windows < 1 or self.lookback_windows < 1:
            raise ValueError("reference_windows and lookback_windows must be at least 1")
        if not 0 < self.false_alarm_rate < 1:
            raise ValueError("false_alarm_rate must lie in (0, 1)")
        if self.reference not in ("baseline", "trailing"):
            raise ValueError("reference must be 'baseline' or 'trailing'")
        if self.history_windows < self.reference_windows + 1:
            raise ValueError("history_windows must exceed reference_windows")
        if self.horizon_windows is not None and self.horizon_windows < 1:
            raise ValueError("horizon_windows must be at least 1")
        unknown = set(self.enabled) - set(MONITORS)
        if unknown:
            raise ValueError(f"unknown monitors {sorted(unknown)}; known: {MONITORS}")

    @property
    def width(self) -> timedelta:
        return timedelta(hours=self.window_hours)

    @property
    def alpha_per_window(self) -> float:
        """The false-alarm budget of one monitor in one window."""
        if self.horizon_windows:
            return self.false_alarm_rate / self.horizon_windows
        return self.false_alarm_rate

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["enabled"] = list(self.enabled)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "enabled" in known:
            known["enabled"] = tuple(known["enabled"])
        return cls(**known)


def reference_range(first_window: int, window: int, config: DriftConfig) -> range | None:
    """The windows pooled as reference when testing ``window`` for a group whose data
    starts at ``first_window``; None when the current window lies inside the baseline."""
    if config.reference == "trailing":
        return range(window - config.reference_windows, window)
    if window < first_window + config.reference_windows:
        return None
    return range(first_window, first_window + config.reference_windows)


def per_test_alpha(alpha_window: float, n_tests: int) -> float:
    """Bonferroni: the level of each of ``n_tests`` tests sharing one window's budget."""
    return alpha_window / max(n_tests, 1)


def window_index(at: datetime | float, width: timedelta) -> int:
    """The index of the window holding ``at`` (a datetime, or seconds since the epoch)."""
    seconds = at if isinstance(at, int | float) else (at - EPOCH).total_seconds()
    return int(seconds // width.total_seconds())


def window_start(index: int, width: timedelta) -> datetime:
    return EPOCH + index * width


def last_complete_window(now: datetime, width: timedelta) -> int:
    """The newest window that has ended at ``now``."""
    return window_index(now, width) - 1
