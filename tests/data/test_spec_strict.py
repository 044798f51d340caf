"""Selection specs: YAML booleans are not numbers, repeated keys, balance quotas that
would be ignored, an empty label window, and messages without pydantic's prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.data.balance import balance
from hilt.data.spec import BalanceSpec, load_spec, parse_spec
from hilt.errors import InputError

HEAD = "name: x\nkind: preference\n"


def _bad(tmp_path: Path, text: str) -> InputError:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.file == str(path)
    return info.value


@pytest.mark.parametrize(("section", "field", "line"), [
    ("split:\n  validation_fraction: no\n", "split.validation_fraction", 4),
    ("dedup:\n  threshold: yes\n", "dedup.threshold", 4),
    ("dedup:\n  num_perm: true\n", "dedup.num_perm", 4),
    ("labels:\n  min_confidence: off\n", "labels.min_confidence", 4),
    ("decontamination:\n  ngram: true\n", "decontamination.ngram", 4),
    ("balance:\n  strategy: cap\n  max_per_slice: yes\n", "balance.max_per_slice", 5),
])
def test_yaml_booleans_are_not_numbers(tmp_path: Path, section: str, field: str,
                                       line: int) -> None:
    err = _bad(tmp_path, HEAD + section)
    assert (err.field, err.line) == (field, line)
    assert "boolean" in err.reason


def test_integers_still_fit_float_fields(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + "dedup:\n  threshold: 1\nsplit:\n  validation_fraction: 0\n")
    spec = load_spec(path)
    assert spec.dedup.threshold == 1.0 and spec.split.validation_fraction == 0.0


def test_a_repeated_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    err = _bad(tmp_path, HEAD + "labels:\n  provenance: [consensus]\n  min_confidence: 0.5\n"
                                "labels:\n  min_confidence: 0.9\n")
    assert err.line == 6
    assert "'labels' repeats (first at line 3)" in err.reason
    err = _bad(tmp_path, HEAD + "labels:\n  min_confidence: 0.5\n  min_confidence: 0.9\n")
    assert err.line == 5 and "first at line 4" in err.reason


@pytest.mark.parametrize(("section", "field", "line", "words"), [
    ("balance:\n  strategy: cap\n", "balance.max_per_slice", 3, "needs max_per_slice"),
    ("balance:\n  max_per_slice: 10\n", "balance.strategy", 3, "needs strategy"),
    ("balance:\n  strategy: none\n  max_per_slice: 10\n", "balance.strategy", 4,
     "needs strategy"),
])
def test_a_balance_quota_that_would_do_nothing_is_refused(tmp_path: Path, section: str,
                                                          field: str, line: int,
                                                          words: str) -> None:
    err = _bad(tmp_path, HEAD + section)
    assert (err.field, err.line) == (field, line)
    assert words in err.reason


def test_valid_balance_specs_still_parse() -> None:
    assert parse_spec({"name": "x", "kind": "sft", "balance": {
        "strategy": "cap", "max_per_slice": 5}}).balance.max_per_slice == 5
    assert parse_spec({"name": "x", "kind": "sft", "balance": {
        "strategy": "equal"}}).balance.max_per_slice is None
    # a spec built around validation cannot make 'cap' a no-op either
    with pytest.raises(ValueError, match="max_per_slice"):
        balance([], BalanceSpec.model_construct(strategy="cap", max_per_slice=None,
                                                seed="s"))


def test_labels_since_after_until_is_refused(tmp_path: Path) -> None:
    err = _bad(tmp_path, HEAD + "labels:\n  since: 2030-01-01T00:00:00Z\n"
                                "  until: 2020-01-01T00:00:00Z\n")
    assert (err.field, err.line) == ("labels.until", 5)
    assert "later than since" in err.reason
    err = _bad(tmp_path, HEAD + "labels:\n  since: 2030-01-01T00:00:00Z\n"
                                "  until: 2030-01-01T00:00:00Z\n")
    assert err.field == "labels.until"


def test_messages_do_not_start_with_the_validator_prefix(tmp_path: Path) -> None:
    err = _bad(tmp_path, "name: x\nkind: sft\nlabels:\n  provenance: [vibes]\n")
    assert err.reason.startswith("unknown provenance"), err.reason
    with pytest.raises(InputError) as info:
        parse_spec({"name": "x", "kind": "sft", "consent": {"required_scopes": ["review"]}})
    assert not str(info.value).count("Value error")
    assert info.value.field == "consent.required_scopes"
