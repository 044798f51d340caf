"""Personal data detection for data selection: a detector protocol and a regex default.

A detector returns the spans it finds; the selection step either drops the record
(``exclude``) or replaces each span by a typed placeholder such as ``[EMAIL]``
(``redact``). Any object with a ``find(text) -> list[PiiSpan]`` method can be plugged
in (for example a NER model); :class:`RegexPiiDetector` is the default and knows

- e-mail addresses (a pragmatic subset of RFC 5322 addr-spec),
- phone numbers (E.164 ``+`` numbers and common national spellings with 9-15 digits in
  groups of 2-4); dates (``2024-01-15``, ``15.01.2024``) are never part of one, so a
  timestamp such as ``2024-01-15 10:30`` is not a phone number. Nor is a decimal number
  (one point and digits on both sides, such as the map coordinates
  ``@37.3362725,-121.8244116``) or the digits on either side of a decimal point, nor a
  bare run of digits (no ``+``, no separator) whose digits step by the same amount of
  -1, 0 or +1 (mod 10: ``123456789``, ``1234567890``, ``987654321``, ``000000000``), as
  in a list of common passwords. Other bare runs of 9-12 digits (``4155550100``, a US
  number as many write it) are still phone numbers,
- card-like numbers: 13-19 digits, optionally grouped by spaces or dashes, that pass the
  Luhn checksum (ISO/IEC 7812-1 Annex B), so arbitrary long numbers are not flagged;
  ISBN-13s (978/979 and a valid ISBN check digit) are not cards,
- IPv4 addresses (each octet 0-255, not part of a longer dotted sequence, not after a
  word such as "section", "§" or "version") and IPv6 addresses (validated with
  ``ipaddress``, with at least one group of 3-4 hex digits or with a hex letter, so
  ``1:2:3:4:5:6:7:8``-like runs of small numbers are not taken for one).

Invisible format characters (a zero-width space or a soft hyphen inside a phone number
or an e-mail address, :data:`hilt.data.ngrams.IGNORABLE`) would break every pattern
while the text still reads as the number, so the detector looks at the text without
them and gives the spans of the text as written, each covering the invisible
characters inside it: redaction removes them with the rest
(:func:`spans_through_invisible`, which also serves other detectors in selection).

Regexes favour recall on the usual spellings; they are not a guarantee, which is why
the detector is pluggable.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from hilt.data.ngrams import IGNORABLE

PII_KINDS = ("email", "phone", "card", "ip")


@dataclass(frozen=True)
class PiiSpan:
    kind: str
    start: int
    end: int


class PiiDetector(Protocol):
    def find(self, text: str) -> list[PiiSpan]: ...


_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Card, IPv4 and phone numbers all live inside a run of digits and separators of at
# least 7 characters; finding those runs first is one cheap scan, and the specific
# patterns then only look inside the runs.
_NUMERIC_RUN = re.compile(r"[+(]?\d[\d \-.()]{5,}\d")
_CARD = r"(?P<card>(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-]))"
_IPV4 = (r"(?P<ipv4>(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
         r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]))")
_PHONE = (r"(?P<phone>(?<![\w+])(?:\+\d{1,3}[ \-.]?)?(?:\(\d{1,4}\)[ \-.]?)?"
          r"\d{2,4}(?:[ \-.]?\d{2,4}){2,4}(?!\w))")
# Order decides which kind wins where two could match the same characters.
_NUMERIC = re.compile("|".join([_CARD, _IPV4, _PHONE]))
_PHONE_ONLY = re.compile(_PHONE)
# Dates (year first, or day and month first), which the phone pattern would otherwise
# read as digit groups: numeric runs are cut at them.
_DAY, _MONTH = r"(?:0?[1-9]|[12]\d|3[01])", r"(?:0?[1-9]|1[0-2])"
_DATE = re.compile(rf"(?<!\d)(?:(?:19|20)\d\d([-./]){_MONTH}\1{_DAY}"
                   rf"|{_DAY}([-./]){_DAY}\2(?:19|20)\d\d)(?!\d)")
# A dotted quad after one of these words is a section, figure or version number (on
# the same line: the detector stays line-local).
_OUTLINE_WORD = re.compile(
    r"(?:§|\b(?:sections?|sec|chapters?|ch|clauses?|articles?|art|parts?|paragraphs?|"
    r"paras?|figures?|figs?|tables?|steps?|items?|rules?|versions?|ver|v|releases?|"
    r"appendix|annex|notes?|nr|pages?|pp?|standards?|iso|rfc|isbn))\.?[^\S\n]*\Z",
    re.IGNORECASE)
_IPV6_HINT = re.compile(r"[0-9A-Fa-f]{3}|[A-Fa-f]")
# A decimal number: phone numbers are not written as one point between two digit groups.
_DECIMAL = re.compile(r"\d+\.\d+")
_POINT_BEFORE, _POINT_AFTER = re.compile(r"\d\.\Z"), re.compile(r"\.\d")
# Matches wherever _NUMERIC_RUN does (it is _NUMERIC_RUN without the optional prefix),
# at half the cost on digit-rich text: a cheap test before the full scan.
_NUMERIC_HINT = re.compile(r"\d[\d \-.()]{5,}\d")


def luhn_valid(digits: str) -> bool:
    """Luhn mod-10 checksum over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class RegexPiiDetector:
    """The default detector; ``kinds`` restricts it to some of :data:`PII_KINDS`."""

    # No pattern matches across a line break (none of them admits one, and every
    # look-around treats a line break like the start or end of the text), so the spans
    # of texts joined by "\n" are exactly the spans of each text: selection checks all
    # fields of a record with one call and looks at single fields only on a hit.
    line_local = True

    def __init__(self, kinds: Iterable[str] = PII_KINDS) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}")

    def find(self, text: str) -> list[PiiSpan]:
        """The spans of personal data in ``text``, read without its invisible format
        characters (see the module docstring)."""
        return spans_through_invisible(self._find, text)

    def _find(self, text: str) -> list[PiiSpan]:
        spans: list[PiiSpan] = []
        if "@" in text and "email" in self.kinds:
            spans.extend(PiiSpan("email", m.start(), m.end()) for m in _EMAIL.finditer(text))
        if ":" in text and "ip" in self.kinds:
            spans.extend(PiiSpan("ip", m.start(), m.end()) for m in _IPV6.finditer(text)
                         if _is_ipv6(m.group()))
        runs = _NUMERIC_RUN.finditer(text) if _NUMERIC_HINT.search(text) else ()
        for run in runs:
            chunk, base = run.group(), run.start()
            for lo, hi in _without_dates(chunk):
                for m in _NUMERIC.finditer(chunk, lo, hi):
                    kind = _numeric_kind(m)
                    if kind == "ip" and _OUTLINE_WORD.search(text, max(0, base + m.start()
                                                                        - 24),
                                                             base + m.start()):
                        continue
                    if kind is not None and kind in self.kinds:
                        spans.append(PiiSpan(kind, base + m.start(), base + m.end()))
        return _non_overlapping(spans)


def spans_through_invisible(find: Callable[[str], list[PiiSpan]], text: str
                            ) -> list[PiiSpan]:
    """``find``'s spans in ``text`` with its invisible format characters removed,
    mapped back to ``text``: each span runs from its first visible character to its
    last, with the invisible ones between them."""
    if text.isascii() or IGNORABLE.search(text) is None:  # nothing to remove
        return find(text)
    visible: list[str] = []
    kept_at: list[int] = []  # where each kept stretch starts, in the visible text
    kept_from: list[int] = []  # and in ``text``
    last = length = 0
    for m in IGNORABLE.finditer(text):
        if m.start() > last:
            kept_at.append(length)
            kept_from.append(last)
            visible.append(text[last:m.start()])
            length += m.start() - last
        last = m.end()
    kept_at.append(length)
    kept_from.append(last)
    visible.append(text[last:])

    def original(i: int) -> int:
        k = bisect.bisect_right(kept_at, i) - 1
        return kept_from[k] + i - kept_at[k]

    return [PiiSpan(s.kind, original(s.start), original(s.end - 1) + 1)
            for s in find("".join(visible)) if s.end > s.start]


class _InvisibleAware:
    """A detector that reads text without its invisible format characters
    (:func:`spans_through_invisible`): selection wraps any detector it is given in
    one, so a plugged-in detector is not misled by a zero-width space either."""

    def __init__(self, detector: PiiDetector) -> None:
        self.detector = detector
        self.line_local = bool(getattr(detector, "line_local", False))

    def find(self, text: str) -> list[PiiSpan]:
        return spans_through_invisible(self.detector.find, text)


def invisible_aware(detector: PiiDetector) -> PiiDetector:
    """``detector``, reading text without its invisible characters."""
    if isinstance(detector, RegexPiiDetector | _InvisibleAware):
        return detector  # it does so already
    return _InvisibleAware(detector)


def _without_dates(chunk: str) -> list[tuple[int, int]]:
    """The stretches of a numeric run between the dates in it."""
    if len(chunk) < 8:
        return [(0, len(chunk))]
    out, lo = [], 0
    for d in _DATE.finditer(chunk):
        out.append((lo, d.start()))
        lo = d.end()
    out.append((lo, len(chunk)))
    return out


def _is_ipv6(value: str) -> bool:
    if not _IPV6_HINT.search(value):  # only 1-2 digit decimal groups: a ratio or list
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _isbn13(digits: str) -> bool:
    """An EAN-13 book number: 978/979 prefix and weights 1, 3 summing to 0 mod 10."""
    return (len(digits) == 13 and digits[:3] in ("978", "979")
            and sum((3 if i % 2 else 1) * (ord(c) - 48) for i, c in enumerate(digits)) % 10
            == 0)


def _numeric_kind(m: re.Match[str]) -> str | None:
    value = m.group()
    if m.lastgroup == "ipv4":
        return "ip"
    digits = re.sub(r"\D", "", value)
    if m.lastgroup == "card":
        if _isbn13(digits):
            return None
        if luhn_valid(digits):
            return "card"
        return "phone" if _phone_like(value) else None
    return "phone" if 9 <= len(digits) <= 15 and not _decimal_or_sequence(m) else None


def _decimal_or_sequence(m: re.Match[str]) -> bool:
    """Whether a phone-shaped match is a decimal number, part of one, or a bare digit
    sequence (see the module docstring).

    The numeric run the match was found in (``m.string``) takes in every point and
    digit next to it, so the run shows whether a decimal point is beside the match."""
    value = m.group()
    if _DECIMAL.fullmatch(value):
        return True
    if not value.isdigit():  # grouped, or with + or (...): spelt as a phone number
        return False
    run = m.string
    if _POINT_BEFORE.match(run, max(0, m.start() - 2), m.start()) \
            or _POINT_AFTER.match(run, m.end()):
        return True
    return _monotone([int(ch) for ch in value])


def _monotone(digits: list[int]) -> bool:
    """Digits that all step by one amount of -1, 0 or +1 mod 10 (``1234567890``,
    ``987654321``, ``555555555``): a keyboard or counting sequence, not a number
    anyone was given."""
    step = (digits[1] - digits[0]) % 10
    return step in (0, 1, 9) and all((b - a) % 10 == step
                                     for a, b in zip(digits, digits[1:], strict=False))


def _phone_like(value: str) -> bool:
    """A long digit run that failed the card test is a phone number only if it is
    spelt like one: grouped, and every group 2-4 digits as the phone pattern requires
    (so ``978-3-16-148410-0`` is not)."""
    digits = re.sub(r"\D", "", value)
    return (9 <= len(digits) <= 15 and (value.startswith("+") or " " in value or "-" in value)
            and _PHONE_ONLY.fullmatch(value) is not None)


def _non_overlapping(spans: list[PiiSpan]) -> list[PiiSpan]:
    """In text order; where spans overlap, the longer one (e.g. a whole e-mail address
    over the digits inside it) is kept."""
    out: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if out and span.start < out[-1].end:
            if span.end - span.start > out[-1].end - out[-1].start:
                out[-1] = span
            continue
        out.append(span)
    return out


def redact(text: str, spans: list[PiiSpan]) -> str:
    """Replace each span by ``[KIND]``; spans are non-overlapping and in order."""
    out, last = [], 0
    for span in spans:
        out.append(text[last:span.start])
        out.append(f"[{span.kind.upper()}]")
        last = span.end
    out.append(text[last:])
    return "".join(out)
