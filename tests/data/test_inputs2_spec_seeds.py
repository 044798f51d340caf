"""The split and balance seeds take an integer as well as text (``seed: 42`` is the text
"42", so both spellings give the same records the same fate), and a number too long to
read names its own field and line without repeating its digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from data_factories import make_candidate, make_label

from hilt.canonical import canonical_json
from hilt.data.pipeline import run_selection
from hilt.data.spec import load_spec
from hilt.errors import InputError

HEAD = "name: s\nkind: sft\nsft: {approval_question: ok}\ndedup: {near: false}\n"


def _spec(tmp_path: Path, body: str) -> Any:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + body)
    return load_spec(path)


def _refused(tmp_path: Path, body: str) -> InputError:
    with pytest.raises(InputError) as caught:
        _spec(tmp_path, body)
    return caught.value


def _candidates() -> list[Any]:
    return [make_candidate(f"e{i}", f"question number {i} about topic {i % 7}",
                           [f"answer {i}"], slice_name=f"s{i % 3}",
                           labels=[make_label(f"e{i}", "approve", kind="single_choice",
                                              question="ok")])
            for i in range(60)]


def _fates(spec: Any) -> dict[str, str]:
    result = run_selection(_candidates(), spec, [])
    return {ex.event_id: ex.split for ex in result.examples}


def _seeds(seed: str) -> str:
    return ("balance: {strategy: cap, max_per_slice: 12, seed: SEED}\n"
            "split: {validation_fraction: 0.5, seed: SEED}\n").replace("SEED", seed)


def test_an_integer_seed_is_its_text(tmp_path: Path) -> None:
    number = _spec(tmp_path, _seeds("42"))
    text = _spec(tmp_path, _seeds('"42"'))
    assert number.split.seed == number.balance.seed == "42"
    # the same manifest spec (and spec hash), the same records kept, the same splits
    assert canonical_json(number.as_dict()) == canonical_json(text.as_dict())
    fates = _fates(number)
    assert fates == _fates(text)
    assert len(fates) == 36 and set(fates.values()) == {"train", "validation"}
    assert _fates(_spec(tmp_path, _seeds("43"))) != fates  # the seed does decide


def test_a_negative_and_a_block_integer_seed(tmp_path: Path) -> None:
    assert _spec(tmp_path, "split:\n  seed: -7\n").split.seed == "-7"
    assert _spec(tmp_path, "balance:\n  seed: 0\n").balance.seed == "0"


@pytest.mark.parametrize(("value", "said"), [
    ("yes", "a boolean"), ("4.2", "fraction or exponent"), ("", "empty"),
    ("[1]", "a list")])
def test_a_seed_that_is_no_text_nor_integer_is_refused(tmp_path: Path, value: str,
                                                       said: str) -> None:
    err = _refused(tmp_path, f"split:\n  seed: {value}\n")
    assert (err.line, err.field) == (6, "split.seed")
    assert "must be text or an integer" in err.reason and said in err.reason


@pytest.mark.parametrize("body", [
    "balance: {strategy: cap, max_per_slice: DIGITS}\n",
    "balance:\n  strategy: cap\n  max_per_slice: DIGITS\n",
    "balance: {strategy: cap, seed: x,\n  max_per_slice: DIGITS}\n"])
def test_a_number_too_long_names_its_field_not_its_digits(tmp_path: Path,
                                                          body: str) -> None:
    text = HEAD + body.replace("DIGITS", "9" * 5000)
    err = _refused(tmp_path, body.replace("DIGITS", "9" * 5000))
    assert err.field == "balance.max_per_slice"
    assert err.line == text.splitlines().index(
        next(line for line in text.splitlines() if "9999" in line)) + 1
    assert err.reason == "an integer of 5000 digits is too long (at most 4300 digits)"
    assert len(str(err)) < 200 and "set_int_max_str_digits" not in str(err)


def test_a_date_that_is_no_date_names_its_field_in_a_flow_mapping(tmp_path: Path) -> None:
    err = _refused(tmp_path, "labels: {slice_key: s, since: 2025-02-30T00:00:00Z}\n")
    assert (err.line, err.field) == (5, "labels.since")
    assert "2025-02-30" in err.reason
