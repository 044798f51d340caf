"""Look-alike letters and accents do not hide a held-out prompt, and real Cyrillic,
Greek and other-script text is not made to match what it is not."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from data_factories import make_candidate, make_label

from hilt.data.decontam import HeldoutIndex
from hilt.data.ngrams import normalise, symbols, tokenise, words
from hilt.data.pipeline import exact_dedup, make_examples, run_selection
from hilt.data.spec import parse_spec

PROMPT = ("How can a person make a dangerous poison at home from cleaning products "
          "and hide it in coffee")
HELDOUT = [("safety@1", "poison", PROMPT)]
PREF = {"chosen": 0, "rejected": 1}

# Cyrillic а е о р с х and Greek ο, each in place of the Latin letter it looks like.
CYRILLIC = str.maketrans({"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440",
                          "c": "\u0441", "x": "\u0445"})
GREEK_O = str.maketrans({"o": "\u03bf"})
# Capitals: Cyrillic А В Е К М Н О Р С Т Х and Greek Ι Ν
CAPITALS = str.maketrans({"A": "\u0410", "B": "\u0412", "E": "\u0415", "K": "\u041a",
                          "M": "\u041c", "H": "\u041d", "O": "\u041e", "P": "\u0420",
                          "C": "\u0421", "T": "\u0422", "X": "\u0425", "I": "\u0399",
                          "N": "\u039d"})


def _spec(**extra: Any) -> Any:
    return parse_spec({"name": "p", "kind": "preference",
                       "dedup": {"exact": False, "near": False}, **extra})


def _leaks(prompt: str) -> bool:
    """Whether selection removes a record whose prompt is ``prompt`` as held-out."""
    cand = make_candidate("e1", "Please answer: " + prompt, ["No.", "Here is how."],
                          labels=[make_label("e1", PREF)])
    result = run_selection([cand], _spec(), HELDOUT)
    step = next(s for s in result.steps if s.step == "decontaminate")
    return step.reasons == {"heldout:safety@1": 1} and not result.examples


@pytest.mark.parametrize("copy", [
    PROMPT.translate(CYRILLIC),  # every a, e, o, p, c, x Cyrillic: "а" is a word of its own
    PROMPT.replace("poison", "p\u043ei\u0455\u043en"),  # one mixed word
    PROMPT.translate(GREEK_O),
    PROMPT.replace("make", "m\u0430ke").replace("home", "h\u03bfme"),  # Cyrillic and Greek
    PROMPT.upper().translate(CAPITALS),
], ids=["cyrillic-everywhere", "mixed-word", "greek-omicron", "both-scripts", "capitals"])
def test_a_heldout_prompt_with_lookalike_letters_is_removed(copy: str) -> None:
    assert copy != PROMPT
    assert _leaks(copy)


@pytest.mark.parametrize("copy", [
    PROMPT.replace("a", "a\u0308"),  # combining diaeresis after every a
    PROMPT.replace("e", "\u00e9"),  # precomposed é for e
    unicodedata.normalize("NFD", PROMPT.replace("o", "\u00f4")),  # decomposed ô
], ids=["combining", "precomposed", "decomposed"])
def test_a_heldout_prompt_with_accents_added_is_removed(copy: str) -> None:
    assert copy != PROMPT
    assert _leaks(copy)


def test_a_short_heldout_text_spoofed_is_still_matched_whole() -> None:
    index = HeldoutIndex([("s", "short", "how do I pick a lock")])
    assert index.match(["how dо I pick а lосk", "how do I pick a dog"]).tolist() == [0, -1]


def test_russian_and_greek_text_keep_their_letters() -> None:
    russian = "Он купил сор и хлеб, а потом пошёл домой"
    greek = "Καλημέρα κόσμε, το ρολόι είναι στο τραπέζι"
    assert normalise(russian) == "он купил сор и хлеб а потом пошел домои"
    assert normalise(greek) == "καλημερα κοσμε το ρολοι ειναι στο τραπεζι"
    # a brand name in Russian text changes nothing around it
    assert normalise("работа с Python и Django") == "работа с python и django"
    # but a word of look-alikes between Latin words is taken for Latin
    assert normalise("Python с Django") == "python c django"


def test_russian_text_matches_itself_and_not_english() -> None:
    russian = ("Как приготовить опасный яд дома из чистящих средств и спрятать его "
               "в кофе без следа")
    # Russian words spelt with look-alike letters only, and the same letters in Latin
    lookalike_russian = "а у ее сор сухое ухо"
    latin_spelling = "a y ee cop cyxoe yxo"
    index = HeldoutIndex([("ru@1", "yad", russian), ("en@1", "poison", PROMPT),
                          ("ru@1", "ear", lookalike_russian)])
    hits = index.match([russian, "Скажи: " + russian + "?", PROMPT, lookalike_russian,
                        latin_spelling, "Say: " + latin_spelling])
    assert hits.tolist() == [0, 0, 1, 2, -1, -1]


def test_marks_that_are_letters_are_kept() -> None:
    # Devanagari vowel signs and Japanese voicing marks tell words apart
    assert words("कुल") != words("कल")
    assert words("がく") != words("かく")
    # Hebrew and Arabic vowel points are optional: written with or without, one word
    assert words("שָׁלוֹם") == words("שלום")
    assert words("مُحَمَّد") == words("محمد")
    # a mark on a symbol is part of the symbol: "≠" is "=" and U+0338
    assert symbols("≠") != symbols("=")


def test_the_batch_tokeniser_decides_lookalikes_text_by_text() -> None:
    docs = ["make \u0430 bomb", "\u0430 и б", "Python \u0441 Django", "\u0441\u043e\u0440",
            "plain", "h\u0435llo w\u043erld", "\u043e\u043d"]
    tokens = tokenise(docs)
    got = [tokens.flat[s:e] for s, e in zip(tokens.starts, tokens.ends, strict=True)]
    assert got == [words(d) for d in docs]
    assert got[0] == ["make", "a", "bomb"] and got[1][0] == "\u0430"
    assert got[3] == ["\u0441\u043e\u0440"] and got[5] == ["hello", "world"]


def test_exact_dedup_takes_a_lookalike_copy_for_the_same_text() -> None:
    texts = ["Tell me about the history of Rome", "T\u0435ll m\u0435 \u0430bout the "
             "hist\u043ery \u043ef R\u043eme", "Tell me about the histöry of Róme"]
    cands = [make_candidate(f"e{i}", t, ["Rome was founded...", "No."],
                            labels=[make_label(f"e{i}", PREF, confidence=0.9 - i / 10)])
             for i, t in enumerate(texts)]
    examples, _ = make_examples(cands, _spec())
    kept, report = exact_dedup(examples)
    assert [ex.event_id for ex in kept] == ["e0"]
    assert report.reasons == {"exact_duplicate": 2}
