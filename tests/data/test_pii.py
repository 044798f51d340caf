import pytest

from hilt.data.pii import RegexPiiDetector, luhn_valid, redact


@pytest.mark.parametrize("number", ["4111111111111111", "5500005555555559",
                                    "378282246310005", "6011111111111117"])
def test_luhn_accepts_published_test_cards(number: str) -> None:
    assert luhn_valid(number)


def test_luhn_rejects_a_changed_digit() -> None:
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize("text,kind,found", [
    ("write to jane.doe+x@mail.example.co.uk today", "email", "jane.doe+x@mail.example.co.uk"),
    ("call +1 415-555-2671 now", "phone", "+1 415-555-2671"),
    ("office (020) 7946 0958", "phone", "(020) 7946 0958"),
    ("card 4111-1111-1111-1111.", "card", "4111-1111-1111-1111"),
    ("host 203.0.113.7 down", "ip", "203.0.113.7"),
    ("v6 2001:db8:85a3::8a2e:370:7334 up", "ip", "2001:db8:85a3::8a2e:370:7334"),
    ("v6 fe80::1 up", "ip", "fe80::1"),
    ("call 415.555.2671 today", "phone", "415.555.2671"),
    ("ring 0049 30 12345678", "phone", "0049 30 12345678"),
    ("on 2024-01-15 call 415-555-2671", "phone", "415-555-2671"),
    ("dns 8.8.8.8.", "ip", "8.8.8.8"),
    ("from 10.0.0.1 at 2024-01-15 10:30", "ip", "10.0.0.1"),
])
def test_detects(text: str, kind: str, found: str) -> None:
    spans = RegexPiiDetector().find(text)
    assert [(s.kind, text[s.start:s.end]) for s in spans] == [(kind, found)]


@pytest.mark.parametrize("text", ["in 2024 we sold 12345 units", "meet at 10:30:15",
                                  "id 1234567890123 (not Luhn)", "version 300.1.2.3",
                                  "plain words only"])
def test_no_false_alarm(text: str) -> None:
    assert RegexPiiDetector().find(text) == []


@pytest.mark.parametrize("text", [
    # timestamps and dates are not phone numbers
    "logged at 2024-01-15 10:30 by the job", "on 15.01.2024 10:30", "10:30 2024-01-15 ok",
    # ISBNs (13 digits in uneven groups; an ISBN-13 that happens to pass Luhn)
    "ISBN 978-3-16-148410-0", "ISBN 978-0-306-40615-7", "see 0-306-40615-2",
    "isbn 9780000000040",  # passes Luhn too
    # section and version numbers, longer dotted sequences
    "see section 14.9.3.1 above", "per § 14.9.3.1", "version 1.2.3.4", "rule 14.9.3.1.2",
    # colon-separated small numbers are not IPv6
    "ratio 3:2:1:4:5:6:7:8 here", "score 1:2::3",
])
def test_no_false_alarm_on_dates_isbns_and_section_numbers(text: str) -> None:
    assert RegexPiiDetector().find(text) == []


def test_redact_keeps_the_rest() -> None:
    text = "mail a@b.io or call +44 20 7946 0958."
    assert redact(text, RegexPiiDetector().find(text)) == "mail [EMAIL] or call [PHONE]."


def test_kinds_restrict_detector() -> None:
    assert RegexPiiDetector(["ip"]).find("a@b.io 10.0.0.1")[0].kind == "ip"
    assert len(RegexPiiDetector(["ip"]).find("a@b.io 10.0.0.1")) == 1
