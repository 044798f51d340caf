"""Validation on synthetic streams with injected drift: each drift is found within its
documented delay (docs/drift.md, "Detection delay"), and streams without drift raise no
more false alarms than the configured rate allows.

Delay = windows from the onset to the first alerting window (0: the onset window
itself). Seeds are fixed, so every run checks the same streams.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from scipy import stats

from hilt.quality.drift.alerts import Alert
from hilt.quality.drift.monitors import (
    detect_agreement_drop,
    detect_rate_change,
    detect_shift,
)
from hilt.quality.drift.synthetic import (
    DAY,
    FIRST_WINDOW,
    bridge_pairs,
    gold_stream,
    label_stream,
    prompt_mix_stream,
    rating_stream,
)
from hilt.quality.drift.transition import transition_matrix
from hilt.quality.drift.windows import DriftConfig, window_start

CONFIG = DriftConfig()  # daily windows, 4-window baseline, 1% false alarms per window
ONSET = 8
N_WINDOWS = 16
WINDOWS = range(FIRST_WINDOW, FIRST_WINDOW + N_WINDOWS)
SEEDS = range(10)


def _day(moment: datetime) -> int:
    return (moment - window_start(FIRST_WINDOW, DAY)).days


def delay(alerts: list[Alert], group: dict[str, str] | None = None) -> int | None:
    days = sorted({_day(a.window_start) for a in alerts
                   if group is None or a.group == group})
    after = [d - ONSET for d in days if d >= ONSET]
    return after[0] if after else None


def early_windows(alerts: list[Alert]) -> int:
    """Windows before the onset with an alert: false alarms."""
    return len({a.window_start for a in alerts if _day(a.window_start) < ONSET})


# Windows tested before the onset in one stream (the first ones form the baseline).
TESTED_BEFORE_ONSET = ONSET - CONFIG.reference_windows


def within_false_alarm_bound(false_alarm_windows: int, streams: int) -> bool:
    """At most the 99.9% quantile of Binomial(streams × tested windows, α)."""
    return false_alarm_windows <= stats.binom.ppf(
        0.999, streams * TESTED_BEFORE_ONSET, CONFIG.alpha_per_window)


def test_reviewer_whose_accuracy_drops_is_caught_within_five_windows() -> None:
    """Gold accuracy 0.92 → 0.60 at once, 20 gold answers per reviewer and window:
    documented delay ≤ 5 windows (median 0)."""
    delays: list[int | None] = []
    early = steady_flagged = 0
    for seed in SEEDS:
        gold = gold_stream(n_windows=N_WINDOWS, onset=ONSET, accuracy_after=0.6, seed=seed)
        alerts = detect_rate_change("gold_accuracy", gold, WINDOWS, CONFIG, "decrease",
                                    min_window_n=CONFIG.min_gold_window_n,
                                    min_reference_n=CONFIG.min_gold_reference_n)
        steady_flagged += len({a.window_start for a in alerts
                               if a.group != {"reviewer": "r0"}})
        early += early_windows(alerts)
        delays.append(delay(alerts, {"reviewer": "r0"}))
    assert all(d is not None and d <= 5 for d in delays), delays
    assert within_false_alarm_bound(early, len(SEEDS))
    assert steady_flagged <= stats.binom.ppf(0.999, len(SEEDS) * N_WINDOWS,
                                             CONFIG.alpha_per_window)
    assert sorted(d for d in delays if d is not None)[len(delays) // 2] <= 1


def test_reviewer_whose_accuracy_decays_slowly_is_caught_within_ten_windows() -> None:
    """Linear decay 0.92 → 0.60 over 8 windows: documented delay ≤ 10 windows for at
    least 8 of 10 streams (the baseline reference does not follow the decay)."""
    delays = []
    for seed in SEEDS:
        gold = gold_stream(n_windows=N_WINDOWS + 4, onset=ONSET, accuracy_after=0.6,
                           ramp_windows=8, seed=seed)
        alerts = detect_rate_change("gold_accuracy", gold,
                                    range(FIRST_WINDOW, FIRST_WINDOW + N_WINDOWS + 4),
                                    CONFIG, "decrease", min_window_n=10, min_reference_n=20)
        delays.append(delay(alerts, {"reviewer": "r0"}))
    assert sum(d is not None and d <= 10 for d in delays) >= 8, delays


def test_rubric_change_that_flips_one_category_is_caught_in_its_first_window() -> None:
    """Half of 'borderline' labels become 'harmful' (200 labels per window): delay 0."""
    early = 0
    for seed in SEEDS:
        labels = label_stream(n_windows=N_WINDOWS, onset=ONSET, seed=seed,
                              flip=("borderline", "harmful", 0.5))
        alerts = detect_shift("label_shift", labels, WINDOWS, CONFIG)
        early += early_windows(alerts)
        assert delay(alerts) == 0
        assert "'borderline'" in alerts[-1].message or "'harmful'" in alerts[-1].message
    assert within_false_alarm_bound(early, len(SEEDS))


def test_rubric_change_is_flagged_by_its_bridge_set() -> None:
    """A bridge of 40 items per old label with 5% re-review noise: the flipped category
    is flagged, the others are not; without the flip nothing is flagged."""
    for seed in SEEDS:
        flipped = transition_matrix(bridge_pairs(flip=("borderline", "harmful", 0.5),
                                                 seed=seed))
        assert flipped.flagged == ["borderline"] and flipped.status == "incompatible"
        steady = transition_matrix(bridge_pairs(seed=seed))
        assert not steady.silent_policy_change


def test_shift_in_prompt_mix_is_caught_in_its_first_window() -> None:
    """Unsafe share 0.2 → 0.4 of 300 prompts per window: the topic mix and the guardrail
    rule's hit rate both alert at delay 0."""
    early_mix = early_rule = 0
    for seed in SEEDS:
        topics, hits = prompt_mix_stream(n_windows=N_WINDOWS, onset=ONSET, seed=seed)
        mix = detect_shift("prompt_mix_shift", topics, WINDOWS, CONFIG)
        rule = detect_rate_change("escalation_rule_hits", hits, WINDOWS, CONFIG, "two-sided")
        early_mix += early_windows(mix)
        early_rule += early_windows(rule)
        assert delay(mix) == 0 and delay(rule) == 0
    assert within_false_alarm_bound(early_mix, len(SEEDS))
    assert within_false_alarm_bound(early_rule, len(SEEDS))


def test_reviewer_answering_at_random_lowers_agreement_within_three_windows() -> None:
    """One of four reviewers starts answering at random (60 items per window, two
    reviews each): documented delay ≤ 3 windows."""
    early = 0
    for seed in SEEDS:
        ratings = rating_stream(n_windows=N_WINDOWS, onset=ONSET, seed=seed)
        alerts = detect_agreement_drop("agreement", ratings, WINDOWS, CONFIG)
        early += early_windows(alerts)
        found = delay(alerts)
        assert found is not None and found <= 3
    assert within_false_alarm_bound(early, len(SEEDS))


def test_small_windows_never_alert() -> None:
    """Below min_window_n nothing is tested, however large the shift."""
    labels = label_stream(n_windows=N_WINDOWS, per_window=CONFIG.min_window_n - 1,
                          onset=ONSET, flip=("safe", "harmful", 1.0))
    assert detect_shift("label_shift", labels, WINDOWS, CONFIG) == []


@pytest.mark.slow
def test_false_alarms_without_drift_stay_within_the_binomial_bound() -> None:
    """200 windows of every stream without drift: the number of windows in which a
    monitor raises any alert is at most the 99.9% quantile of Binomial(200, α) with α the
    configured per-window false-alarm rate (Bonferroni makes the per-window rate ≤ α)."""
    n = 200
    windows = range(FIRST_WINDOW, FIRST_WINDOW + n)
    bound = int(stats.binom.ppf(0.999, n, CONFIG.alpha_per_window))
    topics, hits = prompt_mix_stream(n_windows=n, per_window=100, seed=11)
    found = {
        "gold_accuracy": detect_rate_change(
            "gold_accuracy", gold_stream(n_windows=n, onset=None, seed=11), windows, CONFIG,
            "decrease", min_window_n=10, min_reference_n=20),
        "label_shift": detect_shift("label_shift", label_stream(n_windows=n, per_window=100,
                                                                 seed=11), windows, CONFIG),
        "prompt_mix_shift": detect_shift("prompt_mix_shift", topics, windows, CONFIG),
        "escalation_rule_hits": detect_rate_change("escalation_rule_hits", hits, windows,
                                                   CONFIG, "two-sided"),
        "agreement": detect_agreement_drop("agreement", rating_stream(n_windows=n, seed=11),
                                           windows, CONFIG),
    }
    counts = {name: len({a.window_start for a in alerts}) for name, alerts in found.items()}
    assert all(c <= bound for c in counts.values()), (counts, bound)
    # All five together: at most 5·α·n expected; the pooled count stays within its bound.
    assert sum(counts.values()) <= stats.binom.ppf(0.999, 5 * n, CONFIG.alpha_per_window)
