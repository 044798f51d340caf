"""Invisible format characters inside personal data do not hide it from the detector,
and the redacted span covers them."""

from __future__ import annotations

from typing import Any

import pytest
from data_factories import make_candidate, make_label

from hilt.data.pii import PiiSpan, RegexPiiDetector, redact
from hilt.data.pipeline import handle_pii, heldout_forms, make_examples
from hilt.data.spec import parse_spec

ZWSP, SHY, WJ = "\u200b", "\u00ad", "\u2060"
PHONE = f"+1 415{ZWSP}555 0100"
EMAIL = f"jane{SHY}.doe@exam{ZWSP}ple.com"
PREF = {"chosen": 0, "rejected": 1}


def _spec(action: str) -> Any:
    return parse_spec({"name": "p", "kind": "preference", "pii": {"action": action}})


def _examples(prompt: str) -> list[Any]:
    cand = make_candidate("e1", prompt, ["Sure, noted.", "No."],
                          labels=[make_label("e1", PREF)])
    examples, _ = make_examples([cand], _spec("redact"))
    return examples


@pytest.mark.parametrize("text,kind,found", [
    (f"call {PHONE} now", "phone", PHONE),
    (f"write to {EMAIL} today", "email", EMAIL),
    (f"card 4111{WJ}1111 1111{SHY}1111 ok", "card", f"4111{WJ}1111 1111{SHY}1111"),
    (f"host 203.0{ZWSP}.113.7 down", "ip", f"203.0{ZWSP}.113.7"),
])
def test_the_span_covers_the_invisible_characters_inside(text: str, kind: str,
                                                         found: str) -> None:
    spans = RegexPiiDetector().find(text)
    assert [(s.kind, text[s.start:s.end]) for s in spans] == [(kind, found)]


def test_redaction_leaves_no_part_of_the_address() -> None:
    text = f"mail {EMAIL} or call {PHONE}."
    assert redact(text, RegexPiiDetector().find(text)) == "mail [EMAIL] or call [PHONE]."


def test_spans_after_invisible_characters_are_in_the_original_text() -> None:
    text = f"{ZWSP * 3}a{SHY}b call +44 20 7946 0958{ZWSP}"
    (span,) = RegexPiiDetector().find(text)
    assert text[span.start:span.end] == "+44 20 7946 0958"


def test_exclude_drops_a_record_with_a_hidden_phone_number() -> None:
    kept, report = handle_pii(_examples(f"Call me on {PHONE} please"), _spec("exclude"))
    assert kept == []
    assert report.reasons == {"pii:phone": 1}


def test_redact_replaces_the_whole_hidden_phone_number() -> None:
    kept, report = handle_pii(_examples(f"Call me on {PHONE} or at {EMAIL}."),
                              _spec("redact"))
    assert [ex.messages[0]["content"] for ex in kept] == ["Call me on [PHONE] or at [EMAIL]."]
    assert kept[0].redacted == ("email", "phone")
    assert report.notes["redacted"] == 1


class SecretWords:
    """A plugged-in detector that knows one word."""

    def find(self, text: str) -> list[PiiSpan]:
        at = text.find("hunter2")
        return [] if at < 0 else [PiiSpan("secret", at, at + len("hunter2"))]


def test_a_plugged_in_detector_reads_through_invisible_characters_too() -> None:
    kept, _ = handle_pii(_examples(f"my password is hun{ZWSP}ter2, ok"), _spec("redact"),
                         SecretWords())
    assert kept[0].messages[0]["content"] == "my password is [SECRET], ok"


def test_heldout_texts_are_redacted_the_same_way() -> None:
    forms = list(heldout_forms([("s", "i", f"Ring {PHONE} today")], _spec("redact").pii))
    assert [text for _, _, text in forms] == [f"Ring {PHONE} today", "Ring [PHONE] today"]
