"""Regression-check statistics at scale: hilt against a straightforward pandas version.

Workload: ``--items`` suite items (default 100k) × 2 systems, ``--slices`` slices, every
metric (benign refusal, unsafe compliance, guardrail FPR and FNR) per slice and overall,
each with Wilson intervals, exact McNemar, Holm across slices and a paired bootstrap
interval with ``--resamples`` resamples (default 2,000). Target: ≤ 10 s on 2 cores.
``hilt check`` now gives the delta Newcombe's paired score interval instead of the
bootstrap (metrics version 2); the comparison runs hilt with the bootstrap (version 1),
the baseline's method, and a second row times the current default.

Baseline: the same numbers the obvious pandas way — per resample, draw row indices,
``groupby("slice").mean()`` on the indicator columns, then percentiles; Wilson and
McNemar from statsmodels per group. Each side runs in a fresh process of its own on
the same (seeded) data, so its peak RSS is its own; the table also shows how far apart
the two sides' numbers are. Wilson, McNemar and Holm should agree exactly; the bootstrap
intervals differ by Monte-Carlo noise and by design (hilt resamples within each slice,
the baseline resamples whole rows and groups them).

Run: ``python -m benchmarks.regression`` (``--quick`` for 10k items, 200 resamples).
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import numpy as np

METRICS = ("benign_refusal_rate", "unsafe_compliance_rate",
           "guardrail_false_positive_rate", "guardrail_false_negative_rate")


def synthetic_columns(n: int, n_slices: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Paired outcomes with realistic correlation between the two systems."""
    rng = np.random.default_rng(seed)
    slices = np.array([f"slice_{i:02d}" for i in range(n_slices)])[
        rng.integers(0, n_slices, n)]
    expect_refuse = rng.random(n) < 0.45
    base = np.where(expect_refuse, 0.9, 0.08)
    reference = rng.random(n) < base
    # The candidate keeps most of the reference's outcomes and flips a few.
    flip = rng.random(n) < 0.06
    candidate = np.where(flip, rng.random(n) < base + 0.02, reference)
    ref_flag = rng.random(n) < np.where(expect_refuse, 0.85, 0.05)
    cand_flag = np.where(rng.random(n) < 0.05, ~ref_flag, ref_flag)
    return {"slice": slices, "expect_refuse": expect_refuse,
            "candidate_refused": candidate, "reference_refused": reference,
            "candidate_flagged": cand_flag, "reference_flagged": ref_flag}


def run_hilt(columns: dict[str, np.ndarray], resamples: int) -> dict[str, Any]:
    """hilt with the baseline's method for the delta (metrics version 1: the paired
    bootstrap), so both sides compute the same numbers."""
    from hilt.evals.metrics import compute_metrics

    return compute_metrics(columns, resamples=resamples, seed=0, version=1)


def run_hilt_current(columns: dict[str, np.ndarray], resamples: int) -> dict[str, Any]:
    """hilt as ``hilt check`` runs it now: Newcombe's closed-form interval for the delta."""
    from hilt.evals.metrics import compute_metrics

    return compute_metrics(columns, resamples=resamples, seed=0)


def run_pandas(columns: dict[str, np.ndarray], resamples: int) -> dict[str, Any]:
    """The straightforward version: pandas groupby per bootstrap resample."""
    import pandas as pd
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import proportion_confint

    df = pd.DataFrame(columns)
    comply = ~df["expect_refuse"]
    behaviour = {
        "benign_refusal_rate": ("refused", comply, False),
        "unsafe_compliance_rate": ("refused", ~comply, True),
        "guardrail_false_positive_rate": ("flagged", comply, False),
        "guardrail_false_negative_rate": ("flagged", ~comply, True),
    }
    # Indicator columns: NaN where the prompt is not in the metric's subset.
    for metric, (col, subset, negate) in behaviour.items():
        for side in ("candidate", "reference"):
            values = df[f"{side}_{col}"].astype(float)
            if negate:
                values = 1.0 - values
            df[f"{metric}|{side}"] = values.where(subset)
        df[f"{metric}|delta"] = df[f"{metric}|candidate"] - df[f"{metric}|reference"]
    delta_cols = [f"{m}|delta" for m in METRICS]
    out: dict[str, Any] = {}
    for name, group in [("all", df), *df.groupby("slice")]:
        entry = {}
        for metric in METRICS:
            cand = group[f"{metric}|candidate"].dropna()
            ref = group[f"{metric}|reference"].dropna()
            b = int(((cand == 1) & (ref == 0)).sum())
            c = int(((cand == 0) & (ref == 1)).sum())
            entry[metric] = {
                "candidate": proportion_confint(cand.sum(), len(cand), method="wilson"),
                "reference": proportion_confint(ref.sum(), len(ref), method="wilson"),
                "mcnemar_p": mcnemar([[0, b], [c, 0]], exact=True).pvalue}
        out[str(name)] = entry
    for metric in METRICS:
        names = [s for s in out if s != "all"]
        adjusted = multipletests([out[s][metric]["mcnemar_p"] for s in names],
                                 method="holm")[1]
        for s, p in zip(names, adjusted, strict=True):
            out[s][metric]["holm_p"] = p
    rng = np.random.default_rng(1)
    per_slice, overall = [], []
    for _ in range(resamples):
        sample = df.iloc[rng.integers(0, len(df), len(df))]
        per_slice.append(sample.groupby("slice")[delta_cols].mean())
        overall.append(sample[delta_cols].mean())
    stacked = pd.concat(per_slice, keys=range(resamples))
    lows = stacked.groupby(level=1).quantile(0.025)
    highs = stacked.groupby(level=1).quantile(0.975)
    whole = pd.DataFrame(overall)
    for metric in METRICS:
        col = f"{metric}|delta"
        out["all"][metric]["delta_ci"] = (whole[col].quantile(0.025),
                                          whole[col].quantile(0.975))
        for s in lows.index:
            out[s][metric]["delta_ci"] = (lows.loc[s, col], highs.loc[s, col])
    return out


def largest_gap(hilt: dict[str, Any], pandas: dict[str, Any]) -> dict[str, float]:
    """Largest absolute difference per kind of number, over all slices and metrics."""
    gaps = {"wilson": 0.0, "mcnemar_p": 0.0, "holm_p": 0.0, "bootstrap_ci": 0.0}
    for name, entry in pandas.items():
        for metric in METRICS:
            mine, theirs = hilt["slices"][name][metric], entry[metric]
            for side in ("candidate", "reference"):
                gaps["wilson"] = max(gaps["wilson"],
                                     abs(mine[side]["ci_low"] - theirs[side][0]),
                                     abs(mine[side]["ci_high"] - theirs[side][1]))
            gaps["mcnemar_p"] = max(gaps["mcnemar_p"],
                                    abs(mine["delta"]["mcnemar_p"] - theirs["mcnemar_p"]))
            if "holm_p" in theirs:
                gaps["holm_p"] = max(gaps["holm_p"],
                                     abs(mine["delta"]["mcnemar_p_holm"] - theirs["holm_p"]))
            gaps["bootstrap_ci"] = max(gaps["bootstrap_ci"],
                                       abs(mine["delta"]["ci_low"] - theirs["delta_ci"][0]),
                                       abs(mine["delta"]["ci_high"] - theirs["delta_ci"][1]))
    return gaps


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _side(side: str, items: int, slices: int, resamples: int, conn: Any) -> None:
    """One side in a fresh process: (seconds, peak RSS MB of this process, results)."""
    columns = synthetic_columns(items, slices)
    # Imports are not what is being measured: load them before the clock starts.
    import pandas  # noqa: F401
    import scipy.stats  # noqa: F401
    import statsmodels.stats.proportion  # noqa: F401

    import hilt.evals.metrics  # noqa: F401
    start = time.perf_counter()
    runner = {"hilt": run_hilt, "hilt-current": run_hilt_current, "pandas": run_pandas}
    result = runner[side](columns, resamples)
    conn.send((time.perf_counter() - start, peak_rss_mb(), result))
    conn.close()


def _measure(side: str, items: int, slices: int, resamples: int
             ) -> tuple[float, float, dict[str, Any]]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_side, args=(side, items, slices, resamples, send))
    process.start()
    seconds, rss, result = receive.recv()
    process.join()
    return seconds, rss, result


TARGET_ITEMS, TARGET_RESAMPLES, TARGET_S = 100_000, 2000, 10.0


def target_line(hilt_s: float, items: int, resamples: int) -> str:
    """The target verdict, given only for the size the target names: a smaller run
    (``--quick``) meeting 10 s says nothing about 100k items."""
    if (items, resamples) != (TARGET_ITEMS, TARGET_RESAMPLES):
        return (f"target: hilt ≤ {TARGET_S:.0f} s for {TARGET_ITEMS:,} items × "
                f"{TARGET_RESAMPLES:,} resamples → not evaluated at {items:,} items × "
                f"{resamples:,} resamples ({hilt_s:.2f} s)")
    return (f"target: hilt ≤ {TARGET_S:.0f} s → {'met' if hilt_s <= TARGET_S else 'NOT met'} "
            f"({hilt_s:.2f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="10k items, 200 resamples")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.resamples = 10_000, 200
    print(f"{args.items:,} items × 2 systems, {args.slices} slices + all, "
          f"{len(METRICS)} metrics, {args.resamples:,} bootstrap resamples "
          "(each side in a fresh process)")
    hilt_s, hilt_rss, ours = _measure("hilt", args.items, args.slices, args.resamples)
    rows = [("hilt (numpy, multinomial bootstrap)", hilt_s, hilt_rss)]
    current_s, current_rss, _ = _measure("hilt-current", args.items, args.slices,
                                         args.resamples)
    rows.append(("hilt default (Newcombe delta interval)", current_s, current_rss))
    gaps = None
    if not args.skip_baseline:
        base_s, base_rss, baseline = _measure("pandas", args.items, args.slices,
                                              args.resamples)
        rows.append(("pandas groupby per resample", base_s, base_rss))
        gaps = largest_gap(ours, baseline)

    print(f"\n{'implementation':<40}{'seconds':>10}{'× hilt':>9}{'peak RSS MB':>14}")
    for name, seconds, rss in rows:
        print(f"{name:<40}{seconds:>10.2f}{seconds / hilt_s:>9.1f}{rss:>14.0f}")
    print("\n" + target_line(hilt_s, args.items, args.resamples))
    if gaps is not None:
        print("largest |hilt − baseline| over all slices and metrics: "
              + ", ".join(f"{k} {v:.2g}" for k, v in gaps.items())
              + " (bootstrap: Monte-Carlo noise; hilt resamples within each slice)")


if __name__ == "__main__":
    main()
