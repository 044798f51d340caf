"""Pair files (both forms, HH split, errors) and the statistics behind the reports."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from hilt.errors import InputError
from hilt.train.pairs import (
    last_exchange,
    pairs_hash,
    read_pairs,
    split_hh_transcripts,
    split_pairs,
)
from hilt.train.stats import expected_calibration_error, pearson, reliability_bins, wilson_interval


def test_hh_split_keeps_shared_reply_opening_in_the_replies() -> None:
    chosen = "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: Rob a bank?\n\nAssistant: I won't help."
    rejected = "\n\nHuman: Hi?\n\nAssistant: Hello.\n\nHuman: Rob a bank?\n\nAssistant: I can."
    prompt, c, r = split_hh_transcripts(chosen, rejected)
    assert prompt.endswith("Rob a bank?\n\nAssistant:")
    assert (c, r) == ("I won't help.", "I can.")
    assert last_exchange(prompt) == "Rob a bank?"


def test_real_hh_file_parses_and_every_prompt_ends_at_the_last_assistant_turn(
        shared_data: Path) -> None:
    path = shared_data / "hh-rlhf" / "harmless_pairs_dev.jsonl.gz"
    pairs = read_pairs(path)
    assert len(pairs) == 1600
    with gzip.open(path, "rt") as handle:
        raw = [json.loads(line) for line in handle]
    for pair, obj in zip(pairs, raw, strict=True):
        assert pair.prompt.endswith("\n\nAssistant:")
        # The prompt is a prefix of both transcripts; the rest is exactly the reply.
        for side in ("chosen", "rejected"):
            assert obj[side].startswith(pair.prompt)
            assert obj[side][len(pair.prompt):].strip() == getattr(pair, side)
        assert "\n\nHuman:" not in pair.chosen and "\n\nHuman:" not in pair.rejected
    train, held = split_pairs(pairs, 0.2, seed=0)
    assert (len(train), len(held)) == (1280, 320)
    assert split_pairs(pairs, 0.2, seed=0) == (train, held)
    assert pairs_hash(train) != pairs_hash(held)


@pytest.mark.parametrize("line,field", [
    ({"chosen": "a"}, "rejected"),
    ({"prompt": "p", "chosen": 1, "rejected": "b"}, "chosen"),
    ({"chosen": "Human: x", "rejected": "totally different"}, "chosen"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}, "margin"),
    # json.dumps writes NaN and Infinity, and json.loads reads them back
    ({"prompt": "p", "chosen": "a", "rejected": "b", "margin": float("nan")}, "margin"),
    ({"prompt": "p", "chosen": "a", "rejected": "b", "margin": float("inf")}, "margin"),
])
def test_bad_pair_lines_name_file_line_field(tmp_path: Path, line: dict, field: str) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n"
                    + json.dumps(line) + "\n")
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert (err.value.file, err.value.line, err.value.field) == (str(path), 2, field)


def test_not_json_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{oops\n')
    with pytest.raises(InputError) as err:
        read_pairs(path)
    assert err.value.line == 2


def test_wilson_matches_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 10), (3, 10), (160, 320), (319, 320)]:
        low, high = wilson_interval(k, n)
        ref = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert low == pytest.approx(ref[0], abs=1e-9) and high == pytest.approx(ref[1], abs=1e-9)


def test_ece_against_a_hand_computed_example_and_sklearn_bins() -> None:
    from sklearn.calibration import calibration_curve

    probs = np.array([0.05, 0.15, 0.85, 0.95, 0.95, 0.55])
    hits = np.array([0, 0, 1, 1, 0, 1])
    # bins [0,.1]: conf .05 obs 0; (.1,.2]: .15/0; (.5,.6]: .55/1; (.8,.9]: .85/1; (.9,1]: .95/.5
    expected = (1 * .05 + 1 * .15 + 1 * .45 + 1 * .15 + 2 * .45) / 6
    assert expected_calibration_error(probs, hits) == pytest.approx(expected)
    observed, predicted = calibration_curve(hits, probs, n_bins=10, strategy="uniform")
    ours = [b for b in reliability_bins(probs, hits) if b["n"]]
    assert np.allclose([b["observed"] for b in ours], observed)
    assert np.allclose([b["confidence"] for b in ours], predicted)


def test_pearson_matches_scipy() -> None:
    from scipy.stats import pearsonr

    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    ours = pearson(x, y)
    ref = pearsonr(x, y)
    ci = ref.confidence_interval(0.95)
    assert ours["value"] == pytest.approx(ref.statistic)
    assert ours["ci_low"] == pytest.approx(ci.low) and ours["ci_high"] == pytest.approx(ci.high)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_perfect_correlation_lies_inside_its_interval(sign: float) -> None:
    x = np.arange(40, dtype=float)
    result = pearson(x, sign * x + 3.0)
    assert result["value"] == pytest.approx(sign)
    assert result["ci_low"] <= result["value"] <= result["ci_high"]
    assert (result["ci_high"] if sign > 0 else result["ci_low"]) == sign


def test_reliability_title_counts_each_pair_in_both_orders() -> None:
    from hilt.train.reward_eval import calibration
    from hilt.train.reward_refresh import reliability_title

    bins = calibration(np.linspace(-2.0, 2.0, 40))[1]
    assert sum(b["n"] for b in bins) == 80
    title = reliability_title(40, 0.05)
    assert "n=40 pairs" in title and "80 points" in title and "ECE=0.050" in title
