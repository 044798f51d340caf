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


_EMAIL = r"(?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})"
_CARD = r"(?P<card>(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-]))"
_IPV4 = (r"(?P<ipv4>(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
         r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]))")
_IPV6 = r"(?P<ipv6>(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]))"
_PHONE = (r"(?P<phone>(?<![\w+])(?:\+\d{1,3}[ \-.]?)?(?:\(\d{1,4}\)[ \-.]?)?"
          r"\d{2,4}(?:[ \-.]?\d{2,4}){2,4}(?!\w))")
# One alternation, one pass over the text; order decides which kind wins an overlap.
_PATTERN = re.compile("|".join([_EMAIL, _CARD, _IPV4, _IPV6, _PHONE]))
# Cheap prefilter: no digit, no '@' and no ':' means nothing can match.
_MAYBE = re.compile(r"[\d@:]")


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

    def __init__(self, kinds: Iterable[str] = PII_KINDS) -> None:
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown PII kinds {sorted(unknown)}")

    def find(self, text: str) -> list[PiiSpan]:
        if not _MAYBE.search(text):
            return []
        spans = []
        for m in _PATTERN.finditer(text):
            kind = self._classify(m)
            if kind is not None and kind in self.kinds:
                spans.append(PiiSpan(kind, m.start(), m.end()))
        return spans

    @staticmethod
    def _classify(m: re.Match[str]) -> str | None:
        group = m.lastgroup
        value = m.group()
        if group == "email":
            return "email"
        if group == "card":
            digits = re.sub(r"\D", "", value)
            if luhn_valid(digits):
                return "card"
            return "phone" if len(digits) <= 15 and _phone_like(value) else None
        if group == "ipv4":
            return "ip"
        if group == "ipv6":
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                return None
            return "ip"
        if group == "phone":
            digits = re.sub(r"\D", "", value)
            return "phone" if 9 <= len(digits) <= 15 else None
        return None


def _phone_like(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 9 <= len(digits) <= 15 and (value.startswith("+") or " " in value or "-" in value)


def redact(text: str, spans: list[PiiSpan]) -> str:
    """Replace each span by ``[KIND]``; spans are non-overlapping and in order."""
    out, last = [], 0
    for span in spans:
        out.append(text[last:span.start])
        out.append(f"[{span.kind.upper()}]")
        last = span.end
    out.append(text[last:])
    return "".join(out)
