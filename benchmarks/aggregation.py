"""Aggregation and agreement speed: hilt against crowd-kit and the ``krippendorff`` package.

    python -m benchmarks.aggregation [--quick] [--crowdkit-max N] [--repeats R]

Dawid–Skene: hilt's ``DawidSkene`` against crowd-kit's ``DawidSkene(n_iter=100)`` on the
public crowd sets (``../shared/data/crowd``) and on synthetic sets of 100k, 1M and 10M
answers (5 classes, 10,000 reviewers, 5 answers per item, reviewer accuracies uniform in
[0.4, 0.95], wrong answers uniform over the classes). Every measurement runs in a fresh
subprocess so that peak memory (``ru_maxrss``: the whole process, interpreter and data
included) belongs to that measurement alone. hilt's time covers encoding the
(item, reviewer, label) columns and fitting; crowd-kit's covers fitting its DataFrame.
Data generation is not timed. crowd-kit is skipped above ``--crowdkit-max`` answers
(default 1M) because it takes minutes there; the table says so.

Krippendorff's alpha: hilt's ``krippendorff_alpha`` against ``krippendorff.alpha`` on the
same ``coders × units`` matrix (~1M ratings: 10 coders × 125,000 units, 20% missing,
values 1–5), best of ``--repeats`` runs each, in one process.

Light's kappa (``measure_agreement(..., "cohen")``, 1,000 bootstrap resamples) on the
public crowd sets, against the mean of scikit-learn's ``cohen_kappa_score`` over the same
reviewer pairs (one estimate, no interval), in one process.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crowd"
CROWD_SETS = ("duck", "dog", "rte", "temporal")


def synthetic(n_answers: int, seed: int = 0, n_classes: int = 5, n_reviewers: int = 10_000,
              per_item: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_items = n_answers // per_item
    truth = rng.integers(0, n_classes, n_items)
    skill = rng.uniform(0.4, 0.95, n_reviewers)
    items = np.repeat(np.arange(n_items), per_item)
    reviewers = rng.integers(0, n_reviewers, items.size)
    right = rng.random(items.size) < skill[reviewers]
    labels = np.where(right, truth[items], rng.integers(0, n_classes, items.size))
    return items, reviewers, labels, truth


def _load(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[Any, Any] | np.ndarray]:
    if dataset.startswith("synthetic-"):
        items, reviewers, labels, truth = synthetic(int(dataset.split("-")[1]))
        return items, reviewers, labels, truth
    import pandas as pd

    answers = pd.read_csv(SHARED / dataset / "answer.csv")
    truth_frame = pd.read_csv(SHARED / dataset / "truth.csv")
    return (answers["question"].to_numpy(), answers["worker"].to_numpy(),
            answers["answer"].to_numpy(), dict(zip(truth_frame["question"], truth_frame["truth"],
                                                   strict=True)))


def _accuracy(items: np.ndarray, predicted: np.ndarray,
              truth: dict[Any, Any] | np.ndarray) -> tuple[int, int]:
    """(correct, compared) against the known labels."""
    if isinstance(truth, np.ndarray):
        return int(np.sum(predicted == truth[items.astype(np.int64)])), int(items.size)
    lookup = dict(zip(items.tolist(), predicted.tolist(), strict=True))
    return sum(lookup.get(item) == label for item, label in truth.items()), len(truth)


def _acc_text(result: dict[str, Any]) -> str:
    """Accuracy with its 95 % Wilson interval (a one-item difference on 108 items is
    noise, and the interval shows it)."""
    from hilt.evals.stats import wilson_interval

    low, high = wilson_interval(result["correct"], result["compared"])
    return f"{result['correct'] / result['compared']:.4f} [{low:.3f}, {high:.3f}]"


def worker(system: str, dataset: str) -> dict[str, Any]:
    """One measurement (run in its own process)."""
    items, reviewers, labels, truth = _load(dataset)
    if system == "hilt":
        from hilt.quality import Answers, DawidSkene

        start = time.perf_counter()
        answers = Answers.from_columns(items, reviewers, labels)
        model = DawidSkene().fit(answers)
        seconds = time.perf_counter() - start
        predicted, predicted_items, iterations = model.labels_, model.items_, model.n_iter_
    else:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

        frame = pd.DataFrame({"task": items, "worker": reviewers, "label": labels})
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        ck_model = CrowdKitDawidSkene(n_iter=100)
        result = ck_model.fit_predict(frame)
        seconds = time.perf_counter() - start
        predicted, predicted_items = result.to_numpy(), result.index.to_numpy()
        iterations = len(ck_model.loss_history_)
    correct, compared = _accuracy(predicted_items, np.asarray(predicted), truth)
    return {"system": system, "dataset": dataset, "n_answers": int(items.size),
            "seconds": seconds, "iterations": iterations,
            "correct": correct, "compared": compared,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _measure(system: str, dataset: str) -> dict[str, Any]:
    completed = subprocess.run([sys.executable, "-m", "benchmarks.aggregation", "--worker",
                                system, dataset], capture_output=True, text=True, check=True)
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def _alpha_table(n_units: int, repeats: int) -> list[str]:
    import krippendorff

    from hilt.quality import krippendorff_alpha

    rng = np.random.default_rng(0)
    data = rng.integers(1, 6, (10, n_units)).astype(float)
    data[1:, : n_units // 2] = data[0, : n_units // 2]
    data[rng.random(data.shape) < 0.2] = np.nan
    n_ratings = int(np.isfinite(data).sum())
    lines = [f"\nKrippendorff's alpha, {n_ratings:,} ratings (10 coders × {n_units:,} units), "
             f"best of {repeats}", "",
             "| level | hilt s | krippendorff s | speed-up | abs difference |",
             "|---|---|---|---|---|"]
    for level in ("nominal", "ordinal", "interval", "ratio"):
        ours, theirs = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            ours_value = krippendorff_alpha(data, level)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            theirs_value = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
            theirs.append(time.perf_counter() - start)
        lines.append(f"| {level} | {min(ours):.3f} | {min(theirs):.3f} | "
                     f"{min(theirs) / min(ours):.1f}× | {abs(ours_value - theirs_value):.1e} |")
    return lines


def _lights_kappa_table() -> list[str]:
    import itertools

    import pandas as pd
    from sklearn.metrics import cohen_kappa_score

    from hilt.quality import Answers, measure_agreement
    from hilt.quality.pairwise_cohen import pair_entries

    lines = ["\nLight's kappa (mean pairwise Cohen's kappa) on the crowd sets: hilt's estimate "
             "with 1,000 bootstrap resamples against one estimate from scikit-learn pair by "
             "pair", "",
             "| data | reviewers | pair entries | hilt κ [95% CI] | hilt s | sklearn s "
             "| abs difference |",
             "|---|---|---|---|---|---|---|"]
    for dataset in CROWD_SETS:
        frame = pd.read_csv(SHARED / dataset / "answer.csv")
        answers = Answers.from_columns(frame["question"].to_numpy(),
                                       frame["worker"].to_numpy(), frame["answer"].to_numpy())
        start = time.perf_counter()
        result = measure_agreement(answers, "cohen")
        ours = time.perf_counter() - start
        start = time.perf_counter()
        wide = frame.pivot(index="question", columns="worker", values="answer")
        present, values = wide.notna().to_numpy(), wide.to_numpy()
        kappas = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # undefined pairs warn; they are left out
            for a, b in itertools.combinations(range(wide.shape[1]), 2):
                both = present[:, a] & present[:, b]
                if both.any():
                    kappas.append(cohen_kappa_score(values[both, a], values[both, b]))
        theirs = time.perf_counter() - start
        reference = float(np.nanmean(kappas))
        assert result.value is not None
        interval = (f"[{result.ci_low:.3f}, {result.ci_high:.3f}]"
                    if result.ci_low is not None and result.ci_high is not None else "none")
        lines.append(f"| {dataset} | {answers.n_reviewers} | "
                     f"{pair_entries(answers.item_index, answers.n_items):,} | "
                     f"{result.value:.4f} {interval} | {ours:.2f} | {theirs:.2f} | "
                     f"{abs(result.value - reference):.1e} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shared sets, 100k, alpha on 100k")
    parser.add_argument("--crowdkit-max", type=int, default=1_000_000,
                        help="skip crowd-kit above this many answers")
    parser.add_argument("--repeats", type=int, default=3, help="alpha timing repeats")
    parser.add_argument("--worker", nargs=2, metavar=("SYSTEM", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    sizes = [100_000] if args.quick else [100_000, 1_000_000, 10_000_000]
    datasets = list(CROWD_SETS) + [f"synthetic-{size}" for size in sizes]
    print("Dawid–Skene: hilt vs crowd-kit DawidSkene(n_iter=100), each in a fresh process\n")
    print("| data | answers | hilt acc [95% Wilson] | crowd-kit acc [95% Wilson] | hilt s "
          "| crowd-kit s | speed-up "
          "| hilt iters | crowd-kit iters | hilt peak MB | crowd-kit peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dataset in datasets:
        ours = _measure("hilt", dataset)
        if ours["n_answers"] <= args.crowdkit_max:
            theirs: dict[str, Any] | None = _measure("crowdkit", dataset)
        else:
            theirs = None
        skipped = "skipped (too slow)"
        print(f"| {dataset} | {ours['n_answers']:,} | {_acc_text(ours)} | "
              + (_acc_text(theirs) if theirs else skipped) + " | "
              + f"{ours['seconds']:.2f} | "
              + (f"{theirs['seconds']:.2f}" if theirs else skipped) + " | "
              + (f"{theirs['seconds'] / ours['seconds']:.1f}×" if theirs else "–") + " | "
              + f"{ours['iterations']} | " + (str(theirs["iterations"]) if theirs else "–")
              + f" | {ours['peak_rss_mb']:.0f} | "
              + (f"{theirs['peak_rss_mb']:.0f}" if theirs else "–") + " |", flush=True)
    for line in _alpha_table(12_500 if args.quick else 125_000, args.repeats):
        print(line)
    for line in _lights_kappa_table():
        print(line)


if __name__ == "__main__":
    main()
