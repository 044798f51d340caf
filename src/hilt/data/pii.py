"""Personal data detection for data selection: a detector protocol and a regex default.

A detector returns the spans it finds; the selection step either drops the record
(``exclude``) or replaces each span by a typed placeholder such as ``[EMAIL]``
(``redact``). Any object with a ``find(text) -> list[PiiSpan]`` method can be plugged
in (for example a NER model); :class:`RegexPiiDetector` is the default and knows

- e-mail addresses (a pragmatic subset of RFC 5322 addr-spec),
- phone numbers (E.164 ``+`` numbers and common national spellings with 9-15 digits),
- card-like numbers: 13-19 digits, optionally grouped by spaces or dashes, that pass the
  Luhn checksum (ISO/IEC 7812-1 Annex B), so arbitrary long numbers are not flagged,
- IPv4 addresses (each octet 0-255) and IPv6 addresses (validated with ``ipaddress``).

Regexes favour recall on the usual spellings; they are not a guarantee, which is why
the detector is pluggable.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

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
        spans: list[PiiSpan] = []
        if "@" in text and "email" in self.kinds:
            spans.extend(PiiSpan("email", m.start(), m.end()) for m in _EMAIL.finditer(text))
        if ":" in text and "ip" in self.kinds:
            spans.extend(PiiSpan("ip", m.start(), m.end()) for m in _IPV6.finditer(text)
                         if _is_ipv6(m.group()))
        runs = _NUMERIC_RUN.finditer(text) if _NUMERIC_HINT.search(text) else ()
        for run in runs:
            chunk, base = run.group(), run.start()
            for m in _NUMERIC.finditer(chunk):
                kind = _numeric_kind(m)
                if kind is not None and kind in self.kinds:
                    spans.append(PiiSpan(kind, base + m.start(), base + m.end()))
        return _non_overlapping(spans)


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _numeric_kind(m: re.Match[str]) -> str | None:
    value = m.group()
    if m.lastgroup == "ipv4":
        return "ip"
    digits = re.sub(r"\D", "", value)
    if m.lastgroup == "card":
        if luhn_valid(digits):
            return "card"
        return "phone" if _phone_like(value) else None
    return "phone" if 9 <= len(digits) <= 15 else None


def _phone_like(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 9 <= len(digits) <= 15 and (value.startswith("+") or " " in value or "-" in value)


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
