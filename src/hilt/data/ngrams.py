"""Word n-gram hashing, vectorised over many documents at once.

Near-duplicate detection (MinHash shingles) and decontamination (13-gram overlap) both
need the hashes of every word n-gram of every document. Doing that per n-gram in Python
costs ~1 µs each, far too slow for millions of documents, so documents are processed in
batches: the words of a batch are hashed in one call (``pandas.util.hash_array``, a
keyed SipHash with a fixed key, so hashes are stable across processes and machines), and
the n-gram hash is a position-weighted sum of word hashes,

    g(w_i .. w_{i+n-1}) = mix64( sum_j  h(w_{i+j}) * C_j   xor   n * K )   (mod 2^64)

with odd constants ``C_j`` and the SplitMix64 finaliser ``mix64`` (Steele et al. 2014),
computed with a handful of numpy passes over the whole batch. The length ``n`` enters
the hash so that a short whole-document "gram" never collides with a longer one by
construction.

Text is normalised before tokenising: invisible format characters are removed (every
character of Unicode category ``Cf`` and every default-ignorable code point: soft
hyphen, zero-width space and joiners, word joiner, byte order mark, bidirectional
marks, variation selectors, ...), then NFKC; then (NFD) the accents of Latin, Greek and
Cyrillic letters and the optional vowel points of Hebrew and Arabic are dropped,
Cyrillic and Greek look-alikes of Latin letters are mapped to Latin where they stand
in for Latin (:mod:`hilt.data.lookalikes`), the text is case-folded and recomposed
(NFC); words are runs of ``\\w`` characters. Punctuation, spacing, characters that
render as nothing, accents and look-alike letters therefore never hide an overlap
(``"sm\\u00adoke"``, ``"smoké"`` and ``"smоke"`` with a Cyrillic ``о`` are the word
``smoke``). The marks that are letters of a word (the vowel signs of Devanagari and
the other Brahmic scripts, Thai, Lao, Khmer, Myanmar) and the Japanese voicing marks
are not removed: removing them would make different words one. Chinese, Japanese,
Thai, Lao, Khmer and Myanmar are written without spaces between words, so a whole
sentence would be one "word" and a sentence quoted inside a longer one would share no
n-gram with it; Korean attaches particles to its words. Each Han, kana, Hangul, Thai,
Lao, Khmer and Myanmar character is therefore a word of its own, which makes the
n-grams of such text character n-grams.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hilt.data.lookalikes import unspoof

_WORD = re.compile(r"\w+")
# Word characters of the scripts whose every character is a word (see the docstring).
_UNSPACED = ("\u0e00-\u0eff"  # Thai, Lao
             "\u1000-\u109f"  # Myanmar
             "\u1100-\u11ff"  # Hangul Jamo
             "\u1780-\u17ff"  # Khmer
             "\u3005-\u3007"  # ideographic iteration mark, closing mark, number zero
             "\u3040-\u30ff"  # Hiragana, Katakana
             "\u3100-\u31bf"  # Bopomofo, Hangul compatibility Jamo, Kanbun
             "\u31f0-\u31ff"  # Katakana phonetic extensions
             "\u3400-\u4dbf\u4e00-\u9fff"  # CJK unified ideographs (and extension A)
             "\ua960-\ua97f\uac00-\ud7ff"  # Hangul Jamo extended, syllables
             "\uf900-\ufaff"  # CJK compatibility ideographs
             "\uff66-\uffdc"  # half-width Katakana and Hangul
             "\U00020000-\U0003ffff")  # CJK unified ideographs, extensions B and later
# Removed before NFKC: Unicode category Cf (format characters) and the
# Default_Ignorable_Code_Point property (DerivedCoreProperties, Unicode 15.1), unassigned
# ones included so that text from a newer Unicode version is treated alike. Neither is a
# word character for ``\w`` except the Hangul fillers, so an invisible character inside a
# word would otherwise split it (or, for a filler, change it).
IGNORABLE = re.compile("["
                       "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
                       "\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                       "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
                       "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
                       "\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
                       "]+")
# Combining marks dropped after a letter: the diacritics of the Latin, Greek and
# Cyrillic scripts (the Combining Diacritical Marks blocks, Cyrillic titlo and the like)
# and the vowel points and cantillation of Hebrew and Arabic, which are optional:
# most text is written without them. All of category Mn, Unicode 14. The vowel signs
# of Devanagari and the other Brahmic scripts, Thai, Lao, Khmer, Myanmar and Tibetan
# are letters of the word, and Japanese voicing marks tell kana apart: they stay.
_DIACRITIC_BLOCKS = ((0x0300, 0x036F), (0x0483, 0x0487), (0x0591, 0x05C7),
                     (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670),
                     (0x06D6, 0x06ED), (0x08CA, 0x08FF), (0x1AB0, 0x1AFF),
                     (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0x2DE0, 0x2DFF),
                     (0xA66F, 0xA69F), (0xFE20, 0xFE2F))
_DIACRITIC_CLASS = "".join(chr(c) for lo, hi in _DIACRITIC_BLOCKS for c in range(lo, hi + 1)
                           if unicodedata.category(chr(c)) == "Mn")
# Only after a letter: a mark on a symbol is part of it (U+2260 "≠" is "=" and U+0338).
# (Written mark first, then the letter before it, so that the search scans for marks.)
_DIACRITICS = re.compile(f"[{_DIACRITIC_CLASS}](?<=[^\\W\\d_][{_DIACRITIC_CLASS}])"
                         f"[{_DIACRITIC_CLASS}]*")
# Every character that NFD, case folding, the diacritics or the look-alikes can change
# in a text after NFKC lies in these ranges (Latin, Greek, Cyrillic, Hebrew, Arabic and
# combining marks); a text with none of them skips those steps.
_FOLDABLE = re.compile("[\u00c0-\u02af\u0300-\u052f\u0590-\u06ff\u0750-\u077f"
                       "\u08a0-\u08ff\u1ab0-\u1aff\u1c80-\u1c8f\u1dc0-\u1fff"
                       "\u20d0-\u20ff\u2c60-\u2c7f\u2de0-\u2dff\ua640-\ua69f"
                       "\ua720-\ua7ff\uab30-\uab6f\ufb1d-\ufb4f\ufe20-\ufe2f]")
_TOKEN = re.compile(rf"(?=\w)[{_UNSPACED}]|[^\W{_UNSPACED}]+")
_HAS_UNSPACED = re.compile(f"[{_UNSPACED}]")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_LEN_KEY = np.uint64(0x9E3779B97F4A7C15)
# Odd multipliers, one per position in the n-gram (enough for n <= 64).
_POSITION_MULTIPLIERS = (np.random.default_rng(0x68696C74).integers(
    0, 2**63, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1))


def _length_tag(size: int) -> np.uint64:
    return np.uint64((size * int(_LEN_KEY)) & 0xFFFFFFFFFFFFFFFF)


def _pattern(folded: str) -> re.Pattern[str]:
    """The tokeniser for a normalised text: ``\\w+`` gives the same words when no
    character of those scripts occurs, at two thirds of the cost."""
    if folded.isascii() or not _HAS_UNSPACED.search(folded):
        return _WORD
    return _TOKEN


def words(text: str) -> list[str]:
    """The normalised word sequence of ``text`` (one word per Han, kana, Hangul, Thai,
    Lao, Khmer or Myanmar character)."""
    if text.isascii():  # NFKC is the identity on ASCII, and casefold equals lower
        return _WORD.findall(text.lower())
    folded = _fold(text)
    return _pattern(folded).findall(folded)


def normalise(text: str) -> str:
    """One canonical spelling of a text: its normalised words joined by single spaces."""
    return " ".join(words(text))


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective avalanche on uint64 (wrapping arithmetic)."""
    z = values.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


@dataclass(frozen=True)
class WordBatch:
    """Word hashes of a batch of documents, flattened, with document offsets."""

    hashes: np.ndarray  # uint64, all words of all documents in order
    offsets: np.ndarray  # int64, len = documents + 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


# Joins the texts of a batch so one regex call tokenises them all. It is upper-case and
# the joined text is case-folded before it is inserted, so no text can contain it.
_SEPARATOR_WORD = "HILTSEP"
_SEPARATOR = f" {_SEPARATOR_WORD} "


@functools.cache
def _separator_hash() -> np.uint64:
    import pandas as pd

    return np.uint64(pd.util.hash_array(np.asarray([_SEPARATOR_WORD], dtype=object))[0])


def _fold(text: str) -> str:
    """Invisible format characters removed, NFKC, accents and vowel points dropped,
    look-alike letters mapped to Latin, case-folded, NFC (ASCII: lower-cased; no ASCII
    character is ignorable, a mark or a look-alike).

    Texts joined by NUL (:func:`tokenise`) are folded as if one by one: no
    normalisation step combines characters across a NUL, and the look-alike context
    ends at it."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKC", IGNORABLE.sub("", text))
    if _FOLDABLE.search(folded) is None:
        return folded.casefold()
    # NFD first, so that a precomposed letter shows its base letter and its marks;
    # case folding adds no mark to NFD text, so the marks can go before it, and the
    # look-alikes still see the case as written.
    folded = _DIACRITICS.sub("", unicodedata.normalize("NFD", folded))
    folded = unspoof(folded)
    # NFC puts back together what NFD took apart and nothing removed: Hangul
    # syllables, kana with voicing marks, the vowel signs of the scripts that keep them.
    return unicodedata.normalize("NFC", folded.casefold())


def symbols(text: str) -> str:
    """The normalised characters of ``text`` other than white space: what stands for a
    text without words (emoji, punctuation), which :func:`words` reduces to nothing."""
    return "".join(_fold(text).split())


@dataclass(frozen=True)
class Tokens:
    """The words of a batch of documents, tokenised together.

    ``flat`` holds every word in order, with a separator word between documents;
    document ``i`` is ``flat[starts[i]:ends[i]]`` and its word hashes are
    ``hashes[starts[i]:ends[i]]``.
    """

    flat: list[str]
    hashes: np.ndarray  # uint64, one per entry of ``flat``
    starts: np.ndarray  # int64
    ends: np.ndarray  # int64

    def word_batch(self) -> WordBatch:
        """The documents' word hashes without the separators."""
        lengths = self.ends - self.starts
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if len(lengths) and offsets[-1] == len(self.hashes):
            return WordBatch(self.hashes, offsets)
        keep = np.repeat(self.starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return WordBatch(self.hashes[keep], offsets)


def tokenise(docs: Sequence[str], hasher: WordHasher | None = None) -> Tokens:
    """Normalised words (and their hashes) of ``docs``, found in one regex pass.

    Document ``i``'s words equal ``words(docs[i])``: NFKC and case folding act on each
    character, and the separator is upper case, so no folded text contains it. One pass
    over the joined batch costs about half as much as one call per document.
    """
    hasher = hasher or WordHasher()
    n = len(docs)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Tokens([], np.zeros(0, dtype=np.uint64), empty, empty)
    joined = "\x00".join(docs)
    if joined.count("\x00") != max(n - 1, 0):  # a text holds NUL: one by one
        per_doc = [words(d) for d in docs]
        ends = np.cumsum(np.fromiter((len(w) for w in per_doc), np.int64, count=n))
        flat = [w for ws in per_doc for w in ws]
        return Tokens(flat, hasher.hash(flat), ends - np.diff(ends, prepend=0), ends)
    folded = _fold(joined).replace("\x00", _SEPARATOR)
    flat = _pattern(folded).findall(folded)
    hashes = hasher.hash(flat)
    if n > 1:
        cuts = np.flatnonzero(hashes == _separator_hash())
        if len(cuts) != n - 1:  # a word shares the separator's 64-bit hash
            cuts = np.asarray([i for i, w in enumerate(flat) if w == _SEPARATOR_WORD],
                              dtype=np.int64)
    else:
        cuts = np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], cuts + 1]).astype(np.int64)
    ends = np.concatenate([cuts, [len(flat)]]).astype(np.int64)
    return Tokens(flat, hashes, starts, ends)


class WordHasher:
    """Stable 64-bit word hashes, remembered per distinct word.

    A word's hash is ``pandas.util.hash_array`` of the word (SipHash-2-4 with pandas'
    fixed key), identical in every process; the dictionary only avoids hashing a
    frequent word again (natural text reuses a small vocabulary, and a dictionary
    lookup costs a fraction of hashing). It is emptied when it would exceed
    ``max_words`` entries.
    """

    def __init__(self, max_words: int = 2_000_000) -> None:
        self.known: dict[str, int] = {}
        self.max_words = max_words

    def hash(self, flat: list[str]) -> np.ndarray:
        import pandas as pd

        if not flat:
            return np.zeros(0, dtype=np.uint64)
        known = self.known
        distinct = set(flat)
        missing = [w for w in distinct if w not in known]
        if missing:
            if len(known) + len(missing) > self.max_words:
                known.clear()
                missing = list(distinct)
            new = pd.util.hash_array(np.asarray(missing, dtype=object)).tolist()
            known.update(zip(missing, new, strict=True))
        return np.fromiter([known[w] for w in flat], dtype=np.uint64, count=len(flat))


def hash_words(docs: Sequence[str], hasher: WordHasher | None = None) -> WordBatch:
    return tokenise(docs, hasher).word_batch()


@dataclass(frozen=True)
class GramBatch:
    """n-gram hashes of a batch of documents; ``doc[i]`` is the document of ``hashes[i]``."""

    hashes: np.ndarray  # uint64
    doc: np.ndarray  # int64, non-decreasing
    n_docs: int

    def offsets(self) -> np.ndarray:
        """Start of each document's grams in ``hashes`` (len = n_docs + 1)."""
        out = np.zeros(self.n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.doc, minlength=self.n_docs), out=out[1:])
        return out


def ngram_hashes(batch: WordBatch, n: int, *, short_docs: str = "whole") -> GramBatch:
    """Hashes of all word n-grams of each document.

    ``short_docs``: what a document with fewer than ``n`` (but at least one) words
    yields: ``"whole"`` one gram of its whole word sequence (hashed as an L-gram, so it
    matches the L-grams of other documents), ``"none"`` nothing.
    """
    if not 1 <= n <= len(_POSITION_MULTIPLIERS):
        raise ValueError(f"n must be in 1..{len(_POSITION_MULTIPLIERS)}")
    h, offsets = batch.hashes, batch.offsets
    lengths = np.diff(offsets)
    n_docs = len(lengths)
    if len(h) == 0:
        return GramBatch(np.zeros(0, np.uint64), np.zeros(0, np.int64), n_docs)
    doc_of_pos = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    pos = np.arange(len(h), dtype=np.int64)
    end = offsets[1:][doc_of_pos]
    full = pos + n <= end
    if short_docs == "whole":
        is_start = pos == offsets[:-1][doc_of_pos]
        valid = full | (is_start & (lengths[doc_of_pos] < n))
    else:
        valid = full
    starts = pos[valid]
    ends = end[valid]
    gram_len = np.minimum(ends - starts, n).astype(np.uint64)
    padded = np.concatenate([h, np.zeros(n, dtype=np.uint64)])
    acc = np.zeros(len(starts), dtype=np.uint64)
    for j in range(n):
        idx = starts + j
        term = padded[idx] * _POSITION_MULTIPLIERS[j]
        if short_docs == "whole":
            term[idx >= ends] = 0
        acc += term
    acc ^= gram_len * _LEN_KEY
    return GramBatch(mix64(acc), doc_of_pos[valid], n_docs)


def text_ngram_hashes(texts: Sequence[str], n: int, *, short_docs: str = "whole"
                      ) -> GramBatch:
    return ngram_hashes(hash_words(texts), n, short_docs=short_docs)


def multi_length_hashes(batch: WordBatch, lengths: set[int], *, whole_below: int = 0
                        ) -> GramBatch:
    """Every L-gram for each L in ``lengths``, plus, for documents with fewer than
    ``whole_below`` words, the hash of the whole document, in one incremental pass.

    The L-gram hash is a prefix of the weighted sum above, so the sum for length L+1 is
    the sum for L plus one term: all lengths cost as much as the longest one.
    """
    h, offsets = batch.hashes, batch.offsets
    lengths_of_doc = np.diff(offsets)
    n_docs = len(lengths_of_doc)
    wanted = sorted(set(lengths) | set(range(1, whole_below)))
    if len(h) == 0 or not wanted:
        return GramBatch(np.zeros(0, np.uint64), np.zeros(0, np.int64), n_docs)
    longest = max(wanted)
    if longest > len(_POSITION_MULTIPLIERS):
        raise ValueError(f"n-gram length above {len(_POSITION_MULTIPLIERS)}")
    doc_of_pos = np.repeat(np.arange(n_docs, dtype=np.int64), lengths_of_doc)
    pos = np.arange(len(h), dtype=np.int64)
    room = offsets[1:][doc_of_pos] - pos  # words from pos to the end of its document
    is_start = room == lengths_of_doc[doc_of_pos]
    padded = np.concatenate([h, np.zeros(longest, dtype=np.uint64)])
    acc = np.zeros(len(h), dtype=np.uint64)
    out_hashes, out_docs = [], []
    for j in range(longest):
        acc += padded[pos + j] * _POSITION_MULTIPLIERS[j]
        size = j + 1
        take = np.zeros(len(h), dtype=bool)
        if size in lengths:
            take |= room >= size
        if size < whole_below:
            take |= is_start & (room == size)
        if take.any():
            out_hashes.append(mix64(acc[take] ^ _length_tag(size)))
            out_docs.append(doc_of_pos[take])
    if not out_hashes:
        return GramBatch(np.zeros(0, np.uint64), np.zeros(0, np.int64), n_docs)
    docs = np.concatenate(out_docs)
    order = np.argsort(docs, kind="stable")
    return GramBatch(np.concatenate(out_hashes)[order], docs[order], n_docs)
