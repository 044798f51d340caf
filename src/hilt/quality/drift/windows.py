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

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hilt.errors import InputError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MONITORS = ("label_shift", "reviewer_label_shift", "prompt_mix_shift", "agreement",
            "gold_accuracy", "adjudication_rate", "guideline_gap_rate",
            "escalation_rule_hits")

MIN_WINDOW_HOURS = 1 / 60
MAX_WINDOW_HOURS = 366 * 24
MAX_HISTORY_WINDOWS = 10_000
MAX_HISTORY_HOURS = 100 * 8766
"""Bounds of the window settings: windows from one minute to one year, at most 10,000
of them read back, over at most 100 years."""

_INT_FIELDS = ("reference_windows", "horizon_windows", "min_window_n", "min_reference_n",
               "min_gold_window_n", "min_gold_reference_n", "min_agreement_items",
               "lookback_windows", "history_windows")
_FLOAT_FIELDS = ("window_hours", "false_alarm_rate", "min_expected", "smoothing",
                 "min_psi", "min_rate_change")


def _bad(name: str, message: str) -> InputError:
    """A config error naming the field (``from_dict`` adds the file)."""
    return InputError(message, field=name)


@dataclass(frozen=True)
class DriftConfig:
    """Settings of every monitor (defaults documented in ``docs/drift.md``)."""

    window_hours: float = 24.0
    """Width of one window."""
    reference: str = "baseline"
    """``baseline``: a group's reference is its first ``reference_windows`` windows with
    data (since the rubric version, reviewer or rule appeared, or since the start of the
    runner's ``history_windows``), extended over further windows with data until it
    holds ``min_reference_n`` observations (:func:`baseline_windows`), so slow drift
    cannot hide by moving the reference along with it. ``trailing``: the
    ``reference_windows`` windows just before the current one (follows seasonal change,
    misses slow drift)."""
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
    """Chi-square cells with a smaller expected count are pooled (Cochran's rule); at
    least 1."""
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
        # A config usually comes from a YAML/JSON file, so types are checked here too:
        # a string where a number belongs would otherwise fail deep inside a monitor (or
        # pass silently when a window has no data), and a string where a list belongs
        # would be read character by character.
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if value is None and name == "horizon_windows":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(name, f"must be an integer, not {value!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value)):
                raise _bad(name, f"must be a finite number, not {value!r}")
        if not isinstance(self.reference, str):
            raise _bad("reference", f"must be a string, not {self.reference!r}")
        if (not isinstance(self.enabled, tuple | list)
                or not all(isinstance(m, str) for m in self.enabled)):
            raise _bad("enabled", f"must be a list of monitor names, not {self.enabled!r}")
        if not isinstance(self.extra, dict):
            raise _bad("extra", f"must be a mapping, not {self.extra!r}")
        # Window arithmetic works on datetimes: a window must be long enough to have a
        # width at all and short enough that the history stays within the calendar.
        if not MIN_WINDOW_HOURS <= self.window_hours <= MAX_WINDOW_HOURS:
            raise _bad("window_hours", f"must lie in [{MIN_WINDOW_HOURS:.4g}, "
                                       f"{MAX_WINDOW_HOURS}] (one minute to one year), "
                                       f"not {self.window_hours}")
        for name in ("reference_windows", "lookback_windows"):
            if getattr(self, name) < 1:
                raise _bad(name, "must be at least 1")
        if self.history_windows > MAX_HISTORY_WINDOWS:
            raise _bad("history_windows", f"must be at most {MAX_HISTORY_WINDOWS}")
        if self.history_windows * self.window_hours > MAX_HISTORY_HOURS:
            raise _bad("history_windows", f"times window_hours must cover at most "
                                          f"{MAX_HISTORY_HOURS // 8766} years")
        if self.lookback_windows > self.history_windows:
            # The runner reads no data before history_windows, so windows beyond it could
            # never be tested (and a huge value would only make the run crawl).
            if self._changed("history_windows", "lookback_windows"):
                raise _bad("history_windows", f"must be at least lookback_windows "
                                              f"({self.lookback_windows})")
            raise _bad("lookback_windows", f"must not exceed history_windows "
                                           f"({self.history_windows})")
        if not 0 < self.false_alarm_rate < 1:
            raise _bad("false_alarm_rate", "must lie in (0, 1)")
        if self.reference not in ("baseline", "trailing"):
            raise _bad("reference", "must be 'baseline' or 'trailing'")
        if self.history_windows < self.reference_windows + 1:
            if self._changed("reference_windows", "history_windows"):
                raise _bad("reference_windows", f"must be less than history_windows "
                                                f"({self.history_windows})")
            raise _bad("history_windows", f"must exceed reference_windows "
                                          f"({self.reference_windows})")
        if self.horizon_windows is not None and self.horizon_windows < 1:
            raise _bad("horizon_windows", "must be at least 1")
        for name in ("min_window_n", "min_reference_n", "min_gold_window_n",
                     "min_gold_reference_n", "min_agreement_items"):
            # A test on an empty window means nothing; at least one observation.
            if getattr(self, name) < 1:
                raise _bad(name, "must be at least 1")
        if self.min_expected < 1:
            # Cochran's rule pools categories until every expected count reaches this; below
            # 1 (0 turns pooling off) the chi-square approximation fails on sparse
            # categories and tiny expected counts raise false alarms (Cochran 1954).
            raise _bad("min_expected", f"must be at least 1, not {self.min_expected}")
        for name in ("min_psi", "min_rate_change"):
            if getattr(self, name) < 0:
                raise _bad(name, "must not be negative")
        if self.smoothing <= 0:
            # The divergences take logarithms of the smoothed shares: zero pseudo-counts
            # give log(0) for a category one window lacks.
            raise _bad("smoothing", "must be positive")
        if self.min_rate_change > 1:
            raise _bad("min_rate_change", "is a change of a rate and must be at most 1")
        unknown = set(self.enabled) - set(MONITORS)
        if unknown:
            raise _bad("enabled", f"unknown monitors {sorted(unknown)}; known: {MONITORS}")

    def _changed(self, culprit: str, other: str) -> bool:
        """Whether, of two settings that conflict, ``culprit`` was moved from its default
        while ``other`` was not: the error then names the setting the user wrote."""
        fields = self.__dataclass_fields__
        return (getattr(self, culprit) != fields[culprit].default
                and getattr(self, other) == fields[other].default)

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
    def from_dict(cls, data: dict[str, Any], *, file: str | None = None,
                  line_of: Callable[[tuple[Any, ...]], int | None] | None = None
                  ) -> DriftConfig:
        """The config from a mapping of its fields; errors name ``file``, the field and,
        with ``line_of`` (key path to line, as from a settings file), its line."""
        def where(name: str | None) -> int | None:
            if line_of is None:
                return None
            return line_of((name,) if name is not None else ())

        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "enabled" in known:
            # Only a list: tuple("label_shift") would split the name into characters.
            if not isinstance(known["enabled"], list):
                raise InputError(f"must be a list of monitor names, not {known['enabled']!r}",
                                 file=file, line=where("enabled"), field="enabled")
            known["enabled"] = tuple(known["enabled"])
        try:
            return cls(**known)
        except InputError as exc:
            raise InputError(exc.reason, file=file, line=where(exc.field),
                             field=exc.field) from None


def trailing_range(window: int, config: DriftConfig) -> range:
    """The windows pooled as reference under ``reference: trailing``: the
    ``reference_windows`` calendar windows just before ``window``."""
    return range(window - config.reference_windows, window)


def baseline_windows(sizes: Mapping[int, int], min_n: int, config: DriftConfig
                     ) -> list[int] | None:
    """A group's baseline under ``reference: baseline``: its first windows *with data*
    (``sizes[w] > 0``), at least ``reference_windows`` of them, extended one window with
    data at a time until they hold at least ``min_n`` observations (the monitor's
    ``min_reference_n``, or its own minimum). A group that ramps up slowly thus gets a
    longer baseline instead of one too small to test against. None when all of the
    group's data together is not enough. The baseline is fixed once complete: a window
    is tested against it only when it lies after the baseline's last window."""
    chosen: list[int] = []
    total = 0
    for window in sorted(w for w, n in sizes.items() if n > 0):
        chosen.append(window)
        total += sizes[window]
        if len(chosen) >= config.reference_windows and total >= min_n:
            return chosen
    return None


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
