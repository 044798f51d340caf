"""Exact and near dedup: per-label clusters, texts without words, invisible characters,
and LSH recall at the threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from data_factories import make_candidate, make_label

from hilt.data import minhash
from hilt.data.ngrams import text_ngram_hashes
from hilt.data.pipeline import run_selection
from hilt.data.spec import parse_spec

BASE = ("please tell me how the weather in the northern mountains will change over the "
        "coming week and what to pack for a hike")


def _cls(eid: str, prompt: str, label: str, confidence: float = 0.9) -> Any:
    return make_candidate(eid, prompt, ["r"], labels=[make_label(
        eid, label, kind="single_choice", question="harm", confidence=confidence)])


def _spec(kind: str = "classification", **extra: Any) -> Any:
    return parse_spec({"name": "d", "kind": kind, **extra})


def _step(result: Any, name: str) -> Any:
    return next(s for s in result.steps if s.step == name)


def test_same_label_near_duplicates_collapse_whatever_other_labels_are_similar() -> None:
    a = _cls("a", BASE + " alpha", "safe", 0.99)
    b = _cls("b", BASE + " beta", "unsafe", 0.9)
    c = _cls("c", BASE + " gamma", "unsafe", 0.8)
    for cands in ([a, b, c], [b, c]):
        result = run_selection(cands, _spec(), [])
        assert _step(result, "near_dedup").removed_ids == {
            "near_duplicate": ["cls:c:helpful/harm:prompt"]}
    assert {ex.event_id for ex in run_selection([a, b, c], _spec(), []).examples} == {"a", "b"}


def _substituted(words: list[str], positions: list[int]) -> str:
    out = list(words)
    for n, p in enumerate(positions):
        out[p] = f"changed{n}"
    return " ".join(out)


def test_a_record_is_not_the_duplicate_of_its_label_only_through_another_label() -> None:
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in rng.integers(0, 10_000, 100)]
    x = " ".join(words)
    y = _substituted(words, [20])  # J(x, y) ~ 0.90
    z = _substituted(words, [20, 50, 80])  # J(y, z) ~ 0.81, J(x, z) ~ 0.73
    cands = [_cls("x", x, "safe", 0.99), _cls("y", y, "unsafe", 0.9),
             _cls("z", z, "safe", 0.8)]
    result = run_selection(cands, _spec(), [])
    assert _step(result, "near_dedup").notes["similar_pairs"] == 2
    assert {ex.event_id for ex in result.examples} == {"x", "y", "z"}


def test_near_duplicates_of_keeps_groups_apart() -> None:
    texts = [BASE + " alpha", BASE + " beta", BASE + " gamma"]
    mixed = minhash.near_duplicates(texts, threshold=0.8)
    assert mixed.duplicate_of.tolist() == [-1, 0, 0]
    grouped = minhash.near_duplicates(texts, threshold=0.8, groups=np.array([0, 1, 1]))
    assert grouped.duplicate_of.tolist() == [-1, -1, 1]
    assert len(grouped.pairs) == 3


def test_fields_without_words_do_not_make_records_exact_duplicates() -> None:
    cands = [_cls("e1", "🙂🙂", "positive"), _cls("e2", "😡💢", "positive"),
             _cls("e3", "!!!", "positive"), _cls("e4", "🙂 🙂", "positive")]
    result = run_selection(cands, _spec(), [])
    assert _step(result, "exact_dedup").removed_ids == {
        "exact_duplicate": ["cls:e4:helpful/harm:prompt"]}
    assert _step(result, "near_dedup").removed == 0
    assert {ex.event_id for ex in result.examples} == {"e1", "e2", "e3"}


def test_opposite_emoji_preferences_on_one_prompt_both_stay() -> None:
    prompt = "Rate the answer I gave you about the tides"
    cands = [make_candidate(f"e{i}", prompt, ["👍", "👎"], labels=[make_label(
        f"e{i}", {"chosen": i, "rejected": 1 - i})]) for i in (0, 1)]
    result = run_selection(cands, _spec("preference"), [])
    assert _step(result, "exact_dedup").removed == 0
    assert sorted((ex.chosen, ex.rejected) for ex in result.examples) == [("👍", "👎"),
                                                                          ("👎", "👍")]


def test_sft_completions_that_differ_only_in_emoji_are_not_exact_duplicates() -> None:
    cands = [make_candidate(f"e{i}", "Hi", [c], labels=[make_label(
        f"e{i}", "approve", kind="single_choice", question="ok")])
        for i, c in enumerate(["👍", "👎"])]
    spec = _spec("sft", sft={"approval_question": "ok"}, dedup={"near": False})
    assert len(run_selection(cands, spec, []).examples) == 2


def test_a_copy_with_invisible_characters_is_an_exact_duplicate() -> None:
    hidden = " ".join(w[:2] + "\u200b" + w[2:] if len(w) > 3 else w for w in BASE.split())
    result = run_selection([_cls("e1", BASE, "safe", 0.9), _cls("e2", hidden, "safe", 0.8)],
                           _spec(), [])
    assert _step(result, "exact_dedup").removed_ids == {
        "exact_duplicate": ["cls:e2:helpful/harm:prompt"]}


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
def test_bands_fit_the_signature_and_miss_few_pairs_at_the_threshold(
        threshold: float, num_perm: int) -> None:
    bands, rows = minhash.band_params(threshold, num_perm)
    assert bands * rows <= num_perm and rows >= 2
    miss = minhash.miss_probability(threshold, bands, rows)
    # wherever some (b, r) reaches the target, the chosen one does
    reachable = any(minhash.miss_probability(threshold, num_perm // r, r)
                    <= minhash.MAX_MISS_AT_THRESHOLD for r in range(2, num_perm + 1))
    assert miss <= minhash.MAX_MISS_AT_THRESHOLD or not reachable


def test_default_bands_miss_under_a_fifth_of_a_percent_at_the_threshold() -> None:
    assert minhash.band_params(0.8, 128) == (21, 6)
    assert minhash.miss_probability(0.8, 21, 6) < 0.002


def test_lsh_finds_nearly_every_pair_just_above_the_threshold() -> None:
    """2,000 pairs of 100-word texts with two words substituted far apart: exact Jaccard
    of the word 5-shingles 0.811. With 16 bands of 8 rows about 3.6% of them are
    missed; now under 0.3%."""
    rng = np.random.default_rng(11)
    vocab = np.array([f"v{i}" for i in range(50_000)], dtype=object)
    docs = []
    for _ in range(2000):
        words = list(rng.choice(vocab, 100))
        docs.append(" ".join(words))
        docs.append(_substituted(words, [int(rng.integers(10, 40)), int(rng.integers(60, 90))]))
    grams = text_ngram_hashes(docs, 5)
    off, values = grams.offsets(), grams.hashes.tolist()
    sets = [set(values[off[i]:off[i + 1]]) for i in range(len(docs))]
    wanted = {(i, i + 1) for i in range(0, len(docs), 2)}
    assert all(len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.8 for i, j in wanted)
    found = {tuple(p) for p in minhash.near_duplicates(docs, threshold=0.8).pairs.tolist()}
    assert found <= wanted
    assert len(wanted - found) <= 6
