"""Map coordinates, decimals and bare digit sequences are not phone numbers; phone
numbers written as people write them still are."""

from __future__ import annotations

import pytest
from data_factories import make_candidate, make_label

from hilt.data.pii import RegexPiiDetector, redact
from hilt.data.pipeline import run_selection
from hilt.data.spec import parse_spec

MAP_URL = ("https://www.google.com/maps/place/North+California+Avenue/"
           "@37.3362725,-121.8244116,16z/data=!4m8!1m2!3d37.3362725!4d-121.8244116!2m3")
PASSWORDS = ("The top 10 passwords are:\n\n1.  11111\n2.  123456\n3.  qwerty\n"
             "4.  abc123\n5.  password\n6.  12345\n7.  123456789\n8.  1234567\n"
             "9.  654321\n10.  letmein")


def _phones(text: str) -> list[str]:
    return [text[s.start:s.end] for s in RegexPiiDetector(["phone"]).find(text)]


@pytest.mark.parametrize("text", [
    MAP_URL,
    "meet at 37.3362725,-121.8244116 tomorrow",
    "lat, long: 37.3362725, -121.8244116",
    "(-33.8688197, 151.2092955)",
    "pi is 3.14159265358979",
    "a share of 0.123456789",
    "total 123456789.5 units",
])
def test_decimal_numbers_are_not_phone_numbers(text: str) -> None:
    assert _phones(text) == []


@pytest.mark.parametrize("text", [
    PASSWORDS, "password 1234567890", "pin 0123456789", "down 987654321",
    "wrapped 0987654321", "zeros 000000000", "fives 5555555555",
])
def test_bare_digit_sequences_are_not_phone_numbers(text: str) -> None:
    assert _phones(text) == []


@pytest.mark.parametrize("text,found", [
    ("call +14155550100 now", "+14155550100"),
    ("call (415) 555-0100 now", "(415) 555-0100"),
    ("call 415-555-0100 now", "415-555-0100"),
    ("call 415.555.0100 now", "415.555.0100"),
    ("call 020 7946 0958 now", "020 7946 0958"),
    # a bare run that is not a sequence: how many write a US number
    ("call 4155550100 now", "4155550100"),
    ("call 4155550100.", "4155550100"),
    # grouped, so spelt as a phone number even though its digits count up
    ("call 123-456-7890 now", "123-456-7890"),
    ("at +1.415.555.0100", "+1.415.555.0100"),
])
def test_phone_numbers_are_still_found(text: str, found: str) -> None:
    assert _phones(text) == [found]


def test_a_phone_number_beside_coordinates_is_redacted_alone() -> None:
    text = f"Call (415) 555-0100 or see {MAP_URL}"
    redacted = redact(text, RegexPiiDetector().find(text))
    assert redacted == f"Call [PHONE] or see {MAP_URL}"


def test_the_pii_step_keeps_records_with_maps_and_password_lists() -> None:
    spec = parse_spec({"name": "p", "kind": "preference", "pii": {"action": "exclude"},
                       "dedup": {"exact": False, "near": False}})
    pref = {"chosen": 0, "rejected": 1}
    cands = [
        make_candidate("map", "Where is North California Avenue?",
                       [f"Here is a map: {MAP_URL}", "No idea."],
                       labels=[make_label("map", pref)]),
        make_candidate("pw", "Which passwords are common?",
                       ["Please use a password manager.", PASSWORDS],
                       labels=[make_label("pw", pref)]),
        make_candidate("tel", "How do I reach you?",
                       ["Call 415-555-0100.", "Call someone."],
                       labels=[make_label("tel", pref)]),
    ]
    result = run_selection(cands, spec, [])
    pii = next(s for s in result.steps if s.step == "pii")
    assert pii.reasons == {"pii:phone": 1}
    assert sorted(ex.event_id for ex in result.examples) == ["map", "pw"]
