"""Cyrillic and Greek letters that stand in for Latin ones, mapped back to Latin.

A text copied with some Latin letters replaced by look-alikes (Cyrillic ``а`` U+0430 for
``a``, Greek ``ο`` U+03BF for ``o``) reads the same and shares no word with the original,
so every n-gram through such a word is lost. :func:`unspoof` maps those letters to the
Latin letter they imitate, where the context says they imitate one:

- in a word where a Latin letter stands next to a Cyrillic or Greek one (digits between
  them allowed: ``Hеllо``): words of those languages are not spelt with Latin letters;
- everywhere in a text that has Latin letters and no Cyrillic or Greek letter without a
  Latin look-alike: the text is otherwise Latin;
- in a word made only of look-alikes (``а``, ``сор``), or a run of such words, whose
  neighbouring words are Latin (or mixed, as above) on both sides, or on one side with
  the text's edge on the other (``make а bomb``).

Russian, Ukrainian or Greek text keeps its letters: nearly every sentence has letters
without a Latin look-alike (``и``, ``л``, ``д``, ``я``, ``λ``, ``π``, ``ω``), and a short
word of look-alike letters between words of its own language is not next to Latin ones.
Where a word of such a text is mapped (``с`` in ``Python с Django``), it only becomes a
Latin spelling of itself: a match with another text still needs every other word of an
n-gram to agree.

The table is the part of Unicode Technical Standard #39's ``confusables.txt`` (the
prototype mapping behind the TR39 skeleton) whose source is a Cyrillic or Greek letter
and whose target is one ASCII letter, case kept. TR39 maps ``I``-shaped letters to
``l`` (its skeleton merges ``I`` and ``l``); here capital ``Ι``, ``І`` and ``Ӏ`` map to
``I``, since text is case-folded next and Latin ``I`` folds to ``i``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re

# TR39 confusables.txt, Cyrillic and Greek letters whose prototype is one ASCII letter
# (those that NFKC, applied first, leaves as they are: the lunate sigmas become sigmas).
LOOKALIKES: dict[str, str] = {
    # Greek capitals
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H",
    "\u0399": "I", "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O",
    "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X", "\u037f": "J",
    "\u03dc": "F", "\u03fa": "M",
    # Greek small letters
    "\u03b1": "a", "\u03b3": "y", "\u03b9": "i", "\u03bd": "v", "\u03bf": "o",
    "\u03c1": "p", "\u03c3": "o", "\u03c5": "u", "\u03f3": "j",
    # Cyrillic capitals
    "\u0405": "S", "\u0406": "I", "\u0408": "J", "\u0410": "A", "\u0412": "B",
    "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O",
    "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0423": "Y", "\u0425": "X",
    "\u042c": "b", "\u0474": "V", "\u04ae": "Y", "\u04c0": "I", "\u050c": "G",
    "\u051c": "W",
    # Cyrillic small letters
    "\u0430": "a", "\u0433": "r", "\u0435": "e", "\u043e": "o", "\u0440": "p",
    "\u0441": "c", "\u0443": "y", "\u0445": "x", "\u0455": "s", "\u0456": "i",
    "\u0458": "j", "\u0461": "w", "\u0475": "v", "\u04af": "y", "\u04bb": "h",
    "\u04bd": "e", "\u04cf": "i", "\u0501": "d", "\u051b": "q", "\u051d": "w",
    "\ua647": "i",
}
_TABLE = str.maketrans(LOOKALIKES)
_KEYS = "".join(LOOKALIKES)

# Letters of the Latin script (after NFD: base letters; × and ÷ are left out).
_LATIN = ("A-Za-z\u00aa\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0250-\u02af"
          "\u1d00-\u1d7f\u1e00-\u1eff\u2c60-\u2c7f\ua720-\ua7ff\uab30-\uab6f")
# The Cyrillic and Greek blocks, less their combining marks.
_CYRILLIC_GREEK_RANGES = ((0x0370, 0x03FF), (0x1F00, 0x1FFF), (0x0400, 0x0482),
                          (0x048A, 0x052F), (0x1C80, 0x1C8F), (0xA640, 0xA66E),
                          (0xA680, 0xA69D))
_CYRILLIC_GREEK = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CYRILLIC_GREEK_RANGES)
_HAS_LATIN = re.compile(f"[{_LATIN}]")
HAS_CYRILLIC_GREEK = re.compile(f"[{_CYRILLIC_GREEK}]")
# A Cyrillic or Greek letter without a Latin look-alike: a text with none is otherwise
# Latin wherever it has Latin letters at all.
_UNLIKE = re.compile("[" + "".join(
    chr(c) for lo, hi in _CYRILLIC_GREEK_RANGES for c in range(lo, hi + 1)
    if chr(c).isalpha() and chr(c) not in LOOKALIKES) + "]")
_WORD_SPLIT = re.compile(r"(\w+)")
# Looked for in a text and in the text reversed (so that each match starts with a Latin
# letter, and few positions of a Cyrillic or Greek text start one): a Latin letter next
# to a Cyrillic or Greek one in a word (digits between allowed), or a word with a Latin
# letter next to a word of look-alikes only. A text with neither changes only if it is
# otherwise Latin: a Russian text quoting a brand name is passed over without a look at
# each of its words.
_MIXED_PAIR = re.compile(f"[{_LATIN}][\\d_]*+[{_CYRILLIC_GREEK}]")
# (From the last letter of a run of Latin letters only: the search is linear.)
_NEAR_LATIN = re.compile(f"[{_LATIN}](?![{_LATIN}])(?:[\\d_]*+[{_CYRILLIC_GREEK}]"
                         f"|\\w*+\\W++[{_KEYS}]++(?!\\w))")

# What a word is made of, one letter each: mixed (a Latin letter next to a Cyrillic or
# Greek one), look-alikes only, Latin (no Cyrillic or Greek letter), foreign (any other
# word with a Cyrillic or Greek letter), other (neither script).
_MIXED, _LOOKALIKE_ONLY, _LATIN_WORD, _FOREIGN, _OTHER = "malfo"
_LOOKALIKE_RUN = re.compile(f"{_LOOKALIKE_ONLY}+")


@functools.lru_cache(maxsize=1 << 16)
def _kind(word: str) -> str:
    if HAS_CYRILLIC_GREEK.search(word) is None:
        return _LATIN_WORD if _HAS_LATIN.search(word) is not None else _OTHER
    if _MIXED_PAIR.search(word) is not None or _MIXED_PAIR.search(word[::-1]) is not None:
        return _MIXED
    return _LOOKALIKE_ONLY if all(c in LOOKALIKES for c in word) else _FOREIGN


def unspoof(text: str) -> str:
    """``text`` with the look-alike letters mapped to Latin where the context says
    they imitate Latin (see the module docstring). Texts joined by NUL are taken one
    by one. ``text`` is expected in NFD, with the combining marks on letters removed
    and its case as written, as :func:`hilt.data.ngrams.words` calls it."""
    if HAS_CYRILLIC_GREEK.search(text) is None or _HAS_LATIN.search(text) is None:
        return text
    # The texts with a mixed word or a word of look-alikes next to a Latin one, found
    # by a few searches over all texts at once (a match that runs across a NUL only
    # adds a text to look at); the others can change only as otherwise Latin.
    parts = text.split("\x00")
    ends = list(itertools.accumulate(len(part) + 1 for part in parts))
    backwards = text[::-1]
    near: set[int] = set()
    near.update(bisect.bisect_right(ends, m.start()) for m in _NEAR_LATIN.finditer(text))
    near.update(bisect.bisect_right(ends, len(text) - 1 - m.start())
                for m in _NEAR_LATIN.finditer(backwards))
    for i, part in enumerate(parts):
        if i in near:
            parts[i] = _unspoof_words(part)
        elif HAS_CYRILLIC_GREEK.search(part) is not None \
                and _HAS_LATIN.search(part) is not None and _UNLIKE.search(part) is None:
            parts[i] = part.translate(_TABLE)
    return "\x00".join(parts)


def _unspoof_words(text: str) -> str:
    """:func:`unspoof` of one text, word by word."""
    if _UNLIKE.search(text) is None:  # otherwise Latin: every look-alike imitates Latin
        return text.translate(_TABLE)
    pieces = _WORD_SPLIT.split(text)  # text between words, word, ..., text after
    kinds = "".join(map(_kind, pieces[1::2]))
    mapped = [i for i, kind in enumerate(kinds) if kind == _MIXED]
    latin_side = ("", _LATIN_WORD, _MIXED)
    for run in _LOOKALIKE_RUN.finditer(kinds):
        before = kinds[run.start() - 1:run.start()]
        after = kinds[run.end():run.end() + 1]
        if (before or after) and before in latin_side and after in latin_side:
            mapped.extend(range(run.start(), run.end()))
    if not mapped:
        return text
    for i in mapped:
        pieces[2 * i + 1] = pieces[2 * i + 1].translate(_TABLE)
    return "".join(pieces)
