"""Tokenise each example's texts once; exact dedup, MinHash, decontamination and the
split all read from the result.

Every text field of every example (prompt turns, chosen/rejected, completion, text) is
normalised and split into words once (:func:`hilt.data.ngrams.tokenise`, one regex pass
per batch) and each word hashed once (:class:`hilt.data.ngrams.WordHasher`). A field
without words but with other visible characters (``"🙂"``, ``"!!!"``) gets one word
standing for those characters, so that such fields are told apart like texts. Kept:

- the 64-bit word hashes of every field, flattened, with field and example offsets: the
  MinHash shingles of an example (word n-grams over all its fields in order, the words
  of ``Example.dedup_text()``) and the decontamination n-grams of each field are computed
  from them by numpy, never from text again;
- per example, the sha256 of ``kind``, its field layout (which fields, how many words
  each) and the word hashes of its normalised text (a preference's two replies in one
  order), and the sha256 of that with the label (and the replies' order), for exact
  dedup and its label conflicts;
- per example, when the split groups by prompt, u(normalised prompt) of
  :func:`hilt.data.balance.unit_hash`, so the split needs no tokenising either.

The word lists themselves are dropped after each batch: 8 bytes per word stay in memory
instead of a Python string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hilt.data.balance import unit_hash
from hilt.data.ngrams import WordBatch, WordHasher, normalise, symbols, tokenise, words
from hilt.data.records import Example
from hilt.data.spec import SplitSpec


def ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), vectorised."""
    total = int(sizes.sum())
    return np.repeat(starts, sizes) + (np.arange(total) - np.repeat(np.cumsum(sizes) - sizes,
                                                                    sizes))


def _gather(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> WordBatch:
    lengths = ends - starts
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return WordBatch(values[ranges(starts, lengths)], offsets)


@dataclass
class TextFeatures:
    word_hashes: np.ndarray  # uint64: every word of every field of every example
    field_offsets: np.ndarray  # int64, n_fields + 1: words of field f
    example_fields: np.ndarray  # int64, n_examples + 1: fields of example row r
    exact_digests: list[bytes]  # sha256(group digest, label, replies' order) per row
    prompt_units: np.ndarray | None  # float64 u(normalised prompt) per row, or None
    # sha256(kind, field layout, words) per row, without the label and with a
    # preference's two replies in one order: records that differ only in their label
    # (or in which reply is preferred) share it, for exact dedup's label conflicts
    group_digests: list[bytes]
    # per row: a preference whose replies the group digest holds the other way round
    swapped: list[bool]

    def example_words(self, rows: np.ndarray) -> WordBatch:
        """One document per row: the words of all its fields in order."""
        return _gather(self.word_hashes, self.field_offsets[self.example_fields[rows]],
                       self.field_offsets[self.example_fields[rows + 1]])

    def last_field_words(self, row: int, back: int) -> frozenset[int]:
        """The distinct word hashes of one field of a row, counted from its end
        (``back=1``: the last field; a preference's ``rejected``)."""
        f = int(self.example_fields[row + 1]) - back
        return frozenset(self.word_hashes[self.field_offsets[f]:
                                          self.field_offsets[f + 1]].tolist())

    def field_words(self, rows: np.ndarray) -> tuple[WordBatch, np.ndarray]:
        """One document per field of the given rows, and the position in ``rows`` each
        field belongs to."""
        first, last = self.example_fields[rows], self.example_fields[rows + 1]
        fields = ranges(first, last - first)
        owner = np.repeat(np.arange(len(rows), dtype=np.int64), last - first)
        return _gather(self.word_hashes, self.field_offsets[fields],
                       self.field_offsets[fields + 1]), owner


def _label_bytes(label: str | None) -> bytes:
    """A label for the exact-dedup digest; no label and the text "None" differ."""
    return b"-" if label is None else b"=" + label.encode()


def _prompt_words(ex: Example, flat: list[str], starts: list[int], ends: list[int],
                  first_field: int, n_fields: int) -> list[str]:
    """The words of ``normalise(ex.prompt())`` (``normalise(ex.text)`` without messages),
    taken from the tokenised fields: a single user turn is its text, a conversation
    is ``role: text`` lines (see :func:`hilt.data.records.render_prompt`)."""
    msgs = ex.messages
    if not msgs:
        if ex.text is None:
            return []
        last = first_field + n_fields - 1  # ``text`` is the last field of ``texts()``
        return flat[starts[last]:ends[last]]
    if len(msgs) == 1 and msgs[0]["role"] == "user":
        return flat[starts[first_field]:ends[first_field]]
    out: list[str] = []
    for j, m in enumerate(msgs):
        out.extend(words(m["role"]))
        out.extend(flat[starts[first_field + j]:ends[first_field + j]])
    return out


def _content(ex: Example, raw: np.ndarray, offs: list[int], lengths: np.ndarray, f: int,
             k: int) -> tuple[bytes, bytes, bool]:
    """The word counts and word hashes of a row's ``k`` fields from field ``f``, and
    whether a preference's replies (its last two fields) were put the other way round:
    P + (a, b) and P + (b, a) give the same bytes, one of them ``True``."""
    if ex.kind != "preference" or k < 2:
        return lengths[f:f + k].tobytes(), raw[offs[f]:offs[f + k]].tobytes(), False
    chosen = raw[offs[f + k - 2]:offs[f + k - 1]].tobytes()
    rejected = raw[offs[f + k - 1]:offs[f + k]].tobytes()
    sizes = lengths[f:f + k]
    if chosen <= rejected:
        return sizes.tobytes(), raw[offs[f]:offs[f + k]].tobytes(), False
    head = raw[offs[f]:offs[f + k - 2]].tobytes()
    return (sizes[[*range(k - 2), k - 1, k - 2]].tobytes(), head + rejected + chosen, True)


# Starts the word that stands for a text without words; no ``\w`` run contains it.
_SYMBOLS_MARK = "\x01"


def _with_symbols(batch: WordBatch, texts: Sequence[str], hasher: WordHasher) -> WordBatch:
    """``batch`` with one word added to each text that has no words but other visible
    characters (emoji, punctuation): :func:`hilt.data.ngrams.symbols` of the text. Two
    such texts are then the same only when those characters are, for exact and near
    dedup alike, and a text with words is unchanged."""
    lengths = batch.lengths
    empty = np.flatnonzero(lengths == 0).tolist()
    if not empty:
        return batch
    where, extra = [], []
    for f in empty:
        shown = symbols(texts[f])
        if shown:
            where.append(f)
            extra.append(_SYMBOLS_MARK + shown)
    if not where:
        return batch
    at = np.asarray(where, dtype=np.int64)
    hashes = np.insert(batch.hashes, batch.offsets[at], hasher.hash(extra))
    lengths = lengths.copy()
    lengths[at] = 1
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return WordBatch(hashes, offsets)


def analyse_texts(examples: Sequence[Example], split: SplitSpec | None = None, *,
                  batch: int = 8192) -> TextFeatures:
    """Tokenise and hash every example's fields once (see the module docstring)."""
    hasher = WordHasher()
    hashes: list[np.ndarray] = []
    field_lengths: list[np.ndarray] = []
    fields_per_example = np.zeros(len(examples), dtype=np.int64)
    digests: list[bytes] = []
    groups: list[bytes] = []
    swapped: list[bool] = []
    by_prompt = split is not None and split.group_by == "prompt"
    units = np.zeros(len(examples), dtype=np.float64) if by_prompt else None
    seed = split.seed if split is not None else ""
    sha256 = hashlib.sha256
    for lo in range(0, len(examples), batch):
        chunk = examples[lo:lo + batch]
        texts: list[str] = []
        for i, ex in enumerate(chunk):
            own = ex.texts()
            fields_per_example[lo + i] = len(own)
            texts.extend(own)
        tokens = tokenise(texts, hasher)
        words_of = _with_symbols(tokens.word_batch(), texts, hasher)
        hashes.append(words_of.hashes)
        field_lengths.append(words_of.lengths)
        offs = words_of.offsets.tolist()
        lengths = words_of.lengths.astype(np.int64)
        raw = words_of.hashes
        starts, ends = tokens.starts.tolist(), tokens.ends.tolist()
        f = 0
        for i, ex in enumerate(chunk):
            k = int(fields_per_example[lo + i])
            # The normalised text, as the 64-bit hashes of its words (telling two
            # different texts apart fails only if two words collide on 64 bits). The
            # words alone would make P + ("", "a b") and P + ("a b", "") - opposite
            # preferences - or ("x y", "z") and ("x", "y z") one text, so the digest
            # also holds which fields there are (message roles, then the names of the
            # present text fields) and how many words each has.
            layout = "\x1f".join([*(m["role"] for m in ex.messages),
                                   *(n for n in Example.TEXT_FIELDS
                                     if getattr(ex, n) is not None)])
            sizes, body, turned = _content(ex, raw, offs, lengths, f, k)
            group = sha256(b"%s\x00%s\x00%s\x00%s" % (
                ex.kind.encode(), layout.encode(), sizes, body)).digest()
            groups.append(group)
            swapped.append(turned)
            digests.append(sha256(b"%s\x00%s\x00%d" % (
                group, _label_bytes(ex.label), turned)).digest())
            if units is not None:
                # A classification example's prompt is not among its fields (its text
                # may be the response): tokenise it on its own.
                units[lo + i] = unit_hash(seed, normalise(ex.prompt_text)
                                          if not ex.messages and ex.prompt_text is not None
                                          else " ".join(_prompt_words(
                                              ex, tokens.flat, starts, ends, f, k)))
            f += k
    lengths = np.concatenate(field_lengths) if field_lengths else np.zeros(0, np.int64)
    field_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=field_offsets[1:])
    example_fields = np.zeros(len(examples) + 1, dtype=np.int64)
    np.cumsum(fields_per_example, out=example_fields[1:])
    word_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    return TextFeatures(word_hashes, field_offsets, example_fields, digests, units,
                        groups, swapped)
