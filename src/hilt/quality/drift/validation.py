"""Detection delay and false-alarm rate of the monitors on the synthetic streams.

``python -m hilt.quality.drift.validation [--seeds N]`` prints, per scenario, the
distribution of the delay (windows from the onset to the first alert; 0 = the onset
window) and the share of pre-onset windows with a false alarm, with its count (windows
with a false alarm / windows tested) and a 95 % Wilson interval
(:func:`hilt.quality.calibration.wilson_interval`). The numbers in ``docs/drift.md``
come from this command; the tests assert the documented bounds.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

import numpy as np

from hilt.quality.calibration import wilson_interval
from hilt.quality.drift.alerts import Alert
from hilt.quality.drift.monitors import detect_agreement_drop, detect_rate_change, detect_shift
from hilt.quality.drift.synthetic import (
    DAY,
    FIRST_WINDOW,
    gold_stream,
    label_stream,
    prompt_mix_stream,
    rating_stream,
)
from hilt.quality.drift.windows import DriftConfig, window_start

ONSET, N_WINDOWS = 8, 20


def _day(moment: datetime) -> int:
    return (moment - window_start(FIRST_WINDOW, DAY)).days


def _scenarios(config: DriftConfig) -> dict[str, Callable[[int], list[Alert]]]:
    windows = range(FIRST_WINDOW, FIRST_WINDOW + N_WINDOWS)

    def gold(ramp: int) -> Callable[[int], list[Alert]]:
        def run(seed: int) -> list[Alert]:
            alerts = detect_rate_change(
                "gold_accuracy", gold_stream(n_windows=N_WINDOWS, onset=ONSET, seed=seed,
                                             accuracy_after=0.6, ramp_windows=ramp),
                windows, config, "decrease", min_window_n=config.min_gold_window_n,
                min_reference_n=config.min_gold_reference_n)
            return [a for a in alerts if a.group == {"reviewer": "r0"}]
        return run

    return {
        "reviewer accuracy 0.92→0.60 at once (20 gold/window)": gold(0),
        "reviewer accuracy 0.92→0.60 over 8 windows": gold(8),
        "rubric flips half of 'borderline' to 'harmful' (200 labels/window)":
            lambda seed: detect_shift("label_shift", label_stream(
                n_windows=N_WINDOWS, onset=ONSET, seed=seed,
                flip=("borderline", "harmful", 0.5)), windows, config),
        "prompt mix: unsafe share 0.2→0.4 (300 prompts/window), topic shift":
            lambda seed: detect_shift("prompt_mix_shift", prompt_mix_stream(
                n_windows=N_WINDOWS, onset=ONSET, seed=seed)[0], windows, config),
        "prompt mix: unsafe share 0.2→0.4, guardrail rule hit rate":
            lambda seed: detect_rate_change("escalation_rule_hits", prompt_mix_stream(
                n_windows=N_WINDOWS, onset=ONSET, seed=seed)[1], windows, config,
                "two-sided"),
        "one of 4 reviewers answers at random (60 items × 2 reviews/window)":
            lambda seed: detect_agreement_drop("agreement", rating_stream(
                n_windows=N_WINDOWS, onset=ONSET, seed=seed), windows, config),
    }


def measure(seeds: int = 30, config: DriftConfig | None = None) -> list[dict[str, object]]:
    cfg = config or DriftConfig()
    rows: list[dict[str, object]] = []
    for name, run in _scenarios(cfg).items():
        delays, early = [], 0
        for seed in range(seeds):
            days = sorted({_day(a.window_start) for a in run(seed)})
            early += sum(1 for d in days if d < ONSET)
            after = [d - ONSET for d in days if d >= ONSET]
            delays.append(after[0] if after else None)
        found = np.array([d for d in delays if d is not None])
        tested_before = seeds * (ONSET - cfg.reference_windows)
        low, high = wilson_interval(early, tested_before)
        rows.append({"scenario": name, "detected": f"{found.size}/{seeds}",
                     "median": float(np.median(found)) if found.size else None,
                     "p95": round(float(np.percentile(found, 95)), 1) if found.size else None,
                     "max": int(found.max()) if found.size else None,
                     "false_alarm_rate_before_onset": early / tested_before,
                     "false_alarm_windows": early, "windows_before_onset": tested_before,
                     "false_alarm_ci_low": float(low), "false_alarm_ci_high": float(high)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    print(f"{'scenario':70} {'found':>7} {'median':>6} {'p95':>5} {'max':>4} "
          f"{'FA/window [95% Wilson] (windows)':>34}")
    for row in measure(args.seeds):
        false_alarms = (f"{row['false_alarm_rate_before_onset']:.3f} "
                        f"[{row['false_alarm_ci_low']:.3f}, {row['false_alarm_ci_high']:.3f}] "
                        f"({row['false_alarm_windows']}/{row['windows_before_onset']})")
        print(f"{row['scenario']!s:70} {row['detected']!s:>7} {row['median']!s:>6} "
              f"{row['p95']!s:>5} {row['max']!s:>4} {false_alarms:>34}")
    print(f"within {N_WINDOWS - ONSET} windows after the onset; daily windows, "
          "4-window baseline, false-alarm rate 0.01 per monitor and window")


if __name__ == "__main__":
    main()
