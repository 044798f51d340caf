"""Decontamination: no text of a registered held-out suite may enter training data.

A record is contaminated when one of its text fields (prompt turns, responses, rewrites,
classification text) shares a word n-gram with a held-out text, n = 13 by default — the
overlap test used for GPT-3's contamination analysis (Brown et al. 2020, appendix C) and
since by most decontamination pipelines. Held-out texts shorter than n words cannot
share an n-gram, so they are matched as whole word sequences instead (a record field
that contains the text verbatim, up to case, punctuation, accents and look-alike
letters, is contaminated), and texts shorter than ``min_short_words`` words, where
containment would flag innocent records, only when a record field equals them. In Han,
kana and Hangul text and in the other scripts written without spaces between words
(Thai, Lao, Khmer, Myanmar) every character counts as a word
(:func:`hilt.data.ngrams.words`), so there the n-grams are character n-grams and a
held-out prompt quoted inside a longer text is caught as in any other script.

The held-out side is one sorted array of 64-bit gram hashes (~0.2 M for a 10 k-item
suite); record grams are tested against it in batches, with a 2^24-bit bitmap of the
hashes' top bits as a first, cache-friendly filter before the binary search.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from hilt.data.ngrams import WordBatch, WordHasher, hash_words, multi_length_hashes

_BITMAP_BITS = 24


@dataclass(frozen=True)
class HeldoutItem:
    suite_id: str
    item_id: str


class HeldoutIndex:
    """Gram hashes of every held-out text, with the item each came from."""

    def __init__(self, items: Iterable[tuple[str, str, str]], *, ngram: int = 13,
                 min_short_words: int = 5, batch: int = 4096) -> None:
        self.ngram, self.min_short_words = ngram, min_short_words
        self.items: list[HeldoutItem] = []
        texts: list[str] = []
        for suite_id, item_id, text in items:
            self.items.append(HeldoutItem(str(suite_id), str(item_id)))
            texts.append(text)
        hashes, owners, short_lengths = [], [], set()
        hasher = WordHasher()
        for lo in range(0, len(texts), batch):
            words = hash_words(texts[lo:lo + batch], hasher)
            lengths = words.lengths
            short_lengths |= {int(n) for n in lengths if 0 < n < ngram}
            # Each held-out text yields its n-grams if long, else its whole sequence.
            grams = multi_length_hashes(words, {ngram}, whole_below=ngram)
            hashes.append(grams.hashes)
            owners.append(grams.doc + lo)
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        all_owners = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        order = np.argsort(all_hashes, kind="stable")
        self.hashes = all_hashes[order]
        self.owner = all_owners[order]
        self.containment_lengths = {n for n in short_lengths if n >= min_short_words}
        self.bitmap = np.zeros(1 << _BITMAP_BITS, dtype=bool)
        self.bitmap[(self.hashes >> np.uint64(64 - _BITMAP_BITS)).astype(np.int64)] = True

    def __len__(self) -> int:
        return len(self.items)

    def match(self, fields: Sequence[str]) -> np.ndarray:
        """For each text, the index of one held-out item it overlaps, or -1."""
        if not self.items or not fields:
            return np.full(len(fields), -1, dtype=np.int64)
        return self.match_words(hash_words(fields))

    def match_words(self, words: WordBatch) -> np.ndarray:
        """:meth:`match` for texts already tokenised and hashed (one document each)."""
        out = np.full(len(words.offsets) - 1, -1, dtype=np.int64)
        if not self.items or len(out) == 0:
            return out
        grams = multi_length_hashes(words, {self.ngram} | self.containment_lengths,
                                    whole_below=self.min_short_words)
        top = (grams.hashes >> np.uint64(64 - _BITMAP_BITS)).astype(np.int64)
        maybe = np.flatnonzero(self.bitmap[top])
        if len(maybe) == 0:
            return out
        h = grams.hashes[maybe]
        where = np.searchsorted(self.hashes, h)
        where = np.minimum(where, len(self.hashes) - 1)
        hit = self.hashes[where] == h
        docs = grams.doc[maybe][hit]
        owners = self.owner[where[hit]]
        # The first hit per field is enough to name the item that contaminated it.
        first = np.unique(docs, return_index=True)
        out[first[0]] = owners[first[1]]
        return out
