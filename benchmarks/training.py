"""Training benchmark: hilt's default reward model against TRL's RewardTrainer.

    python -m benchmarks.training [--quick] [--variants] [--xstest] [--threads N]
        [--validate] [--config JSON] [--only-xstest] [--xstest-nested] [--xstest-seeds N]

On the Anthropic HH harmless pairs (``../shared/data/hh-rlhf``), one seeded 80/20
split, the same run measures:

* hilt default (MiniLM, top 2 layers fine-tuned on cached frozen states, BT loss,
  cheap features, 3 epochs, a 128-token window) — training pairs/s, scoring
  responses/s, held-out accuracy; ``--quick`` trains it 1 epoch and its row says so;
* TRL ``RewardTrainer`` on the same encoder (MiniLM as a one-label sequence
  classifier, full fine-tuning, 1 epoch) and the same pairs, shown the same view of the
  conversation (last human turn + reply) but through its own token window
  (``--trl-max-length``, 256 by default; the row names it) — the same three numbers;
* the "always prefer the shorter reply" baseline.

``--variants`` adds the ablation table of ``docs/train.md`` (one line per idea);
``--xstest`` adds cross-model refusal detection on XSTest: the classifier against
XSTest's string-match rule on each held-out model; ``--xstest-nested`` the validation
inside each rotation's two training models (train on one, test on the other), which is
where configurations are compared; ``--xstest-seeds N`` the default's held-out accuracy
for seeds 0..N-1 (the seed sets the stage-1 fold split). ``--validate`` scores the
reward models on a seeded 20 % validation split of the training pairs instead of the
held-out pairs, and ``--config`` sets ``RewardConfig`` fields of the default row.
Timings on shared machines are noisy; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(os.environ.get("HILT_SHARED_DATA",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data"))

VARIANTS: dict[str, dict[str, Any]] = {
    "frozen MiniLM, full transcript, linear BT head": dict(trainable_layers=0, view="full",
                                                          cheap_features=False, epochs=5,
                                                          head_learning_rate=3e-3),
    "frozen, last exchange only": dict(trainable_layers=0, cheap_features=False, epochs=5,
                                       head_learning_rate=3e-3),
    "frozen, last exchange + cheap features": dict(trainable_layers=0, epochs=5,
                                                   head_learning_rate=3e-3),
    "top 1 layer tuned, last exchange + cheap": dict(trainable_layers=1),
    "top 2 layers tuned, last exchange, no cheap": dict(cheap_features=False),
    "top 2 layers tuned, last exchange + cheap (default)": dict(),
    "top 2 layers tuned, reply only + cheap": dict(view="response"),
    "top 2 layers tuned, full transcript + cheap": dict(view="full"),
    "top 2 layers tuned, 2 epochs": dict(epochs=2),
    "default, frozen expert reads 256 tokens": dict(expert_max_length=256),
}


def _accuracy(chosen: np.ndarray, rejected: np.ndarray) -> tuple[float, float, float]:
    from hilt.train.reward_eval import accuracy_block

    block = accuracy_block(np.asarray(chosen) - np.asarray(rejected))
    return block["value"], block["ci_low"], block["ci_high"]


def _row(name: str, acc: tuple[float, float, float], train_s: float | None,
         train_pairs: float | None, score_s: float | None, n_scored: int | None) -> dict:
    return {"method": name, "accuracy": acc[0], "ci": (acc[1], acc[2]), "train_s": train_s,
            "train_pairs_per_s": (train_pairs / train_s) if train_s and train_pairs else None,
            "score_per_s": (n_scored / score_s) if score_s and n_scored else None}


def hilt_row_name(config: Any, overrides: dict[str, Any], overrides_text: str) -> str:
    """The hilt row's label: says when it is not the default and which token window it reads.

    ``--quick`` trains one epoch where the default trains three, so that row must not be
    called the default; the window matters when it is compared with TRL's.
    """
    from hilt.train.reward import RewardConfig

    default_epochs = RewardConfig().epochs
    if config.epochs == default_epochs and not overrides:
        name = "hilt default (MiniLM, top-2 tuned, cached"
    else:
        name = (f"hilt, {config.epochs} epoch{'s' if config.epochs != 1 else ''} "
                f"(the default trains {default_epochs}; MiniLM, top-2 tuned, cached")
    name += f", {config.max_length} tokens)"
    if overrides:
        name += f" with {overrides_text}"
    return name


def bench_hilt(train: list, held: list, config: Any, name: str) -> dict:
    from hilt.train.reward import train_reward_model

    start = time.perf_counter()
    model = train_reward_model(train, config, progress=False)
    train_s = time.perf_counter() - start
    prompts = [p.prompt for p in held]
    start = time.perf_counter()
    chosen = model.score(prompts, [p.chosen for p in held])
    rejected = model.score(prompts, [p.rejected for p in held])
    score_s = time.perf_counter() - start
    return _row(name, _accuracy(chosen, rejected), train_s, len(train) * config.epochs,
                score_s, 2 * len(held))


def bench_trl(train: list, held: list, epochs: float, max_length: int, seed: int) -> dict:
    from hilt.train.pairs import Pair, last_exchange
    from hilt.train.reward_trl import TRLRewardConfig, train_trl_reward

    def view(p: Pair) -> Pair:
        return replace(p, prompt=f"Human: {last_exchange(p.prompt)}\n\nAssistant:")

    config = TRLRewardConfig(model="all-MiniLM-L6-v2", epochs=epochs, max_length=max_length,
                             learning_rate=3e-5, batch_size=16, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        scorer, facts = train_trl_reward([view(p) for p in train], config, Path(tmp),
                                         progress=False)
        train_s = time.perf_counter() - start
        held_view = [view(p) for p in held]
        prompts = [p.prompt for p in held_view]
        start = time.perf_counter()
        chosen = scorer.score(prompts, [p.chosen for p in held_view])
        rejected = scorer.score(prompts, [p.rejected for p in held_view])
        score_s = time.perf_counter() - start
    row = _row("TRL RewardTrainer, MiniLM full fine-tune", _accuracy(chosen, rejected),
               train_s, facts["pairs_used"] * epochs, score_s, 2 * len(held))
    row["method"] += f" ({facts['pairs_used']}/{len(train)} pairs within max_length)"
    return row


def _print(rows: list[dict]) -> None:
    width = max(len(r["method"]) for r in rows)
    print(f"{'method':{width}s} {'accuracy [95% CI]':24s} {'train s':>8s} {'pairs/s':>8s} "
          f"{'scored/s':>9s}")
    for r in rows:
        acc = f"{r['accuracy']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
        fmt = (lambda v, spec: format(v, spec) if v is not None else "-")  # noqa: E731
        print(f"{r['method']:{width}s} {acc:24s} {fmt(r['train_s'], '8.1f'):>8s} "
              f"{fmt(r['train_pairs_per_s'], '8.1f'):>8s} {fmt(r['score_per_s'], '9.1f'):>9s}",
              flush=True)


def xstest_candidates() -> dict[str, Any]:
    """Configurations compared by validation inside the training models (--xstest-nested)."""
    from hilt.train.classifier import ClassifierConfig
    from hilt.train.xstest import XSTEST_DEFAULT

    base = ClassifierConfig(opening_chars=300, refusal_lexicon=True)
    return {"stacked, 300 chars + lexicon (previous default)": base,
            "... + prompt-reply similarity": replace(base, context_similarity=True),
            "... + duplicates weighted 1/count": replace(base, deduplicate=True),
            "... + similarity + duplicates 1/count": replace(base, context_similarity=True,
                                                             deduplicate=True),
            "... + negation if harmful": replace(base, harmful_request_negation=True),
            "... + similarity + duplicates + negation if harmful (XSTest default)":
                XSTEST_DEFAULT}


def nested_line(name: str, r: dict[str, Any]) -> str:
    """One nested-validation line: each direction and the mean with 95 % Wilson intervals
    and their n (the mean's n is the replies of both directions)."""
    forward, backward = r["direction_rates"].values()
    mean = r["mean_rate"]
    return (f"{name[:64]:64s} {r['held_out_model']:16s} {_ci(forward):22s} "
            f"{_ci(backward):22s} {_ci(mean):22s} {forward['n']:>5d} {backward['n']:>5d} "
            f"{mean['n']:>5d}")


def run_xstest_nested() -> None:
    from hilt.train.xstest import xstest_nested

    print(f"\n{'classifier (nested validation: train on one model, test on another)':64s} "
          f"{'rotation':16s} {'A->B [95% CI]':22s} {'B->A [95% CI]':22s} "
          f"{'mean [95% CI]':22s} {'n A>B':>5s} {'n B>A':>5s} {'n':>5s}")
    for name, config in xstest_candidates().items():
        for r in xstest_nested(DATA / "xstest", config):
            print(nested_line(name, r), flush=True)


def _ci(block: dict[str, Any]) -> str:
    """``value [low, high]`` of a rate block, or ``-`` when it has no data."""
    if block["value"] is None:
        return "-"
    return f"{block['value']:.3f} [{block['ci_low']:.3f},{block['ci_high']:.3f}]"


def paired_comparison(classifier_right: np.ndarray, rule_right: np.ndarray) -> dict[str, Any]:
    """Exact McNemar test of classifier against string match on the same held-out replies.

    The two accuracies share their test items, so their Wilson intervals overlapping
    says little; the discordant pairs (only one of the two is right) decide.
    """
    from hilt.evals.stats import mcnemar_exact

    only_classifier = int((classifier_right & ~rule_right).sum())
    only_rule = int((rule_right & ~classifier_right).sum())
    return {"classifier_only": only_classifier, "rule_only": only_rule,
            "mcnemar_p": mcnemar_exact(only_classifier, only_rule)}


def xstest_rotations_paired(config: Any) -> list[dict[str, Any]]:
    """``hilt.train.xstest.xstest_rotations`` plus the paired test against string match.

    The library's result holds only the two rates; the McNemar test needs each reply's
    outcome under both, so the rotation is run here with the same training step.
    """
    from hilt.train.classifier import error_rates
    from hilt.train.refusal import (
        REFUSE,
        XSTEST_MODELS,
        load_xstest_completions,
        string_match_refusal,
    )
    from hilt.train.stats import rate
    from hilt.train.xstest import _config, _fit_predict

    config = _config(config)
    data = {m: load_xstest_completions(DATA / "xstest", m) for m in XSTEST_MODELS}
    results = []
    for held_out in XSTEST_MODELS:
        train = [r for m in XSTEST_MODELS if m != held_out for r in data[m]]
        test = data[held_out]
        predicted, _ = _fit_predict(train, test, config, config.context_similarity)
        truth = np.array([r["label"] == REFUSE for r in test])
        pred_refuse = np.array([p == REFUSE for p in predicted])
        rule = np.array([string_match_refusal(r["completion"]) for r in test])
        results.append({
            "held_out_model": held_out, "n": len(test),
            "classifier_accuracy": rate(int((pred_refuse == truth).sum()), len(test)),
            "string_match_accuracy": rate(int((rule == truth).sum()), len(test)),
            "classifier_errors": error_rates(pred_refuse, truth),
            "paired": paired_comparison(pred_refuse == truth, rule == truth)})
    return results


def xstest_line(name: str, r: dict[str, Any]) -> str:
    """One table line: accuracies, FPR/FNR with Wilson intervals and their n, McNemar p."""
    e = r["classifier_errors"]
    fpr, fnr = e["false_positive_rate"], e["false_negative_rate"]
    paired = r["paired"]
    fpr_text = f"{_ci(fpr)} n={fpr['n']}"
    fnr_text = f"{_ci(fnr)} n={fnr['n']}"
    return (f"{name[:64]:64s} {r['held_out_model']:16s} {_ci(r['classifier_accuracy']):22s} "
            f"{_ci(r['string_match_accuracy']):22s} {fpr_text:30s} {fnr_text:30s} "
            f"{paired['classifier_only']:>3d}/{paired['rule_only']:<3d} "
            f"{paired['mcnemar_p']:9.2g}")


def run_xstest() -> None:
    from hilt.train.classifier import ClassifierConfig
    from hilt.train.xstest import XSTEST_DEFAULT

    base = ClassifierConfig(opening_chars=300, refusal_lexicon=True)
    configs = {"300 chars + lexicon + similarity + dups 1/count + negation if harmful "
               "(default)": XSTEST_DEFAULT,
               "stacked head, first 300 chars + sentence lexicon (previous default)": base,
               "stacked, 300 chars + lexicon + prompt-reply similarity + duplicates 1/count":
                   replace(base, context_similarity=True, deduplicate=True),
               "stacked, 300 chars + lexicon, unweighted classes":
                   ClassifierConfig(opening_chars=300, refusal_lexicon=True, class_weight=None),
               "linear calibrated head, 300 chars + lexicon":
                   ClassifierConfig(opening_chars=300, refusal_lexicon=True, head="linear"),
               "stacked, first 500 chars + lexicon":
                   ClassifierConfig(opening_chars=500, refusal_lexicon=True),
               "stacked head, first 300 characters, no lexicon":
                   ClassifierConfig(opening_chars=300),
               "stacked head, first 128 tokens": ClassifierConfig(),
               "linear calibrated head, first 300 characters":
                   ClassifierConfig(opening_chars=300, head="linear"),
               "stacked, first 300 chars, accuracy-tuned threshold":
                   ClassifierConfig(opening_chars=300, threshold_rule="accuracy")}
    print(f"\n{'classifier':64s} {'held-out model':16s} {'accuracy [95% CI]':22s} "
          f"{'string match [95% CI]':22s} {'FPR [95% CI] n (negatives)':30s} "
          f"{'FNR [95% CI] n (positives)':30s} {'b/c':7s} {'McNemar p':>8s}")
    print("b/c: replies only the classifier / only string match gets right; "
          "McNemar p: exact two-sided test of the two accuracies on the same replies")
    for name, config in configs.items():
        for r in xstest_rotations_paired(config):
            print(xstest_line(name, r), flush=True)


def seeds_summary(table: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Per held-out model, over seeds (rows of ``table``: one rate block per model): the
    mean accuracy and the lowest, each with a 95 % Wilson interval on the same n.

    Every seed scores the same replies, so the mean over seeds is not a rate over
    seeds × n replies: its interval is the Wilson interval of the mean count of correct
    replies over n, as wide as one seed's. The seed-to-seed spread is the min/max row."""
    from hilt.train.stats import wilson_interval

    summary: dict[str, list[dict[str, Any]]] = {"mean": [], "min": [], "max": []}
    for column in zip(*table, strict=True):
        n = column[0]["n"]
        counts = [block["successes"] for block in column]
        for name, count in (("mean", float(np.mean(counts))), ("min", min(counts)),
                            ("max", max(counts))):
            low, high = wilson_interval(count, n)
            summary[name].append({"value": count / n, "n": n, "successes": count,
                                  "ci_low": low, "ci_high": high})
    return summary


def run_xstest_seeds(count: int) -> None:
    """The XSTest default with ``count`` seeds (the stage-1 fold split): per seed, mean,
    lowest and highest, each with a 95 % Wilson interval and n."""
    from hilt.train.refusal import XSTEST_MODELS
    from hilt.train.xstest import XSTEST_DEFAULT, xstest_rotations

    print(f"\n{'XSTest default, held-out accuracy [95% CI] by seed':50s} "
          + " ".join(f"{m:>22s}" for m in XSTEST_MODELS) + "   n")
    table = []
    for seed in range(count):
        results = xstest_rotations(DATA / "xstest", replace(XSTEST_DEFAULT, seed=seed))
        table.append([r["classifier_accuracy"] for r in results])
        print(f"{'seed ' + str(seed):50s} " + " ".join(f"{_ci(v):>22s}" for v in table[-1])
              + "   " + "/".join(str(v["n"]) for v in table[-1]), flush=True)
    for name, row in seeds_summary(table).items():
        label = name + (" (Wilson on the mean count: same replies every seed)"
                        if name == "mean" else " over seeds")
        print(f"{label:50s} " + " ".join(f"{_ci(v):>22s}" for v in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 train / 100 held-out pairs")
    parser.add_argument("--variants", action="store_true", help="the ablation table")
    parser.add_argument("--xstest", action="store_true", help="XSTest refusal classifier")
    parser.add_argument("--no-trl", action="store_true", help="skip the TRL comparison")
    parser.add_argument("--only-xstest", action="store_true",
                        help="only the XSTest refusal table (no reward models)")
    parser.add_argument("--xstest-nested", action="store_true",
                        help="only the XSTest validation inside each rotation's training models")
    parser.add_argument("--xstest-seeds", type=int, default=0,
                        help="only the XSTest default's held-out accuracy with seeds 0..N-1")
    parser.add_argument("--trl-pairs", type=int, default=None,
                        help="train TRL on only the first N training pairs (same held-out set)")
    parser.add_argument("--trl-max-length", type=int, default=256)
    parser.add_argument("--validate", action="store_true",
                        help="score a seeded 20%% validation split of the training pairs "
                             "(1,024 train / 256 validation) instead of the held-out pairs")
    parser.add_argument("--config", default="{}",
                        help="JSON of RewardConfig fields for the default row, e.g. "
                             "'{\"ensemble\": 2, \"length_batches\": true}'")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ["HILT_TORCH_THREADS"] = str(args.threads)
    if args.xstest_nested:
        run_xstest_nested()
        return
    if args.xstest_seeds:
        run_xstest_seeds(args.xstest_seeds)
        return
    if args.only_xstest:
        run_xstest()
        return

    from hilt.train.pairs import read_pairs, split_pairs
    from hilt.train.reward import RewardConfig

    pairs = read_pairs(DATA / "hh-rlhf" / "harmless_pairs_dev.jsonl.gz")
    train, held = split_pairs(pairs, 0.2, seed=0)
    if args.validate:
        # choose between ideas here; the held-out pairs stay unseen
        train, held = split_pairs(train, 0.2, seed=1)
    epochs = 3
    if args.quick:
        train, held, epochs = train[:200], held[:100], 1
    print(f"HH harmless: {len(train)} training pairs, {len(held)} "
          f"{'validation' if args.validate else 'held-out'} pairs "
          f"(seeded 80/20 split), torch threads={args.threads}")
    shorter = [len(p.chosen) < len(p.rejected) for p in held]
    rows = [_row("always prefer the shorter reply", _accuracy(
        np.array(shorter, float), np.zeros(len(held)) + 0.5), None, None, None, None)]
    default = RewardConfig(**{"epochs": epochs, "seed": args.seed, **json.loads(args.config)})
    rows.append(bench_hilt(train, held, default,
                           hilt_row_name(default, json.loads(args.config), args.config)))
    _print(rows[-2:])
    if not args.no_trl:
        rows.append(bench_trl(train[:args.trl_pairs] if args.trl_pairs else train, held, 1.0,
                              args.trl_max_length, args.seed))
        rows[-1]["method"] += f", {args.trl_max_length} tokens"
        _print(rows[-1:])
    if args.variants:
        for name, over in VARIANTS.items():
            config = replace(default, **over)
            if args.quick:
                config = replace(config, epochs=1)
                name += " [quick: 1 epoch]"
            rows.append(bench_hilt(train, held, config, name))
            _print(rows[-1:])
    print("\nsummary")
    _print(rows)
    if args.xstest:
        run_xstest()


if __name__ == "__main__":
    main()
