"""Near-duplicate detection with MinHash and locality-sensitive hashing (LSH).

MinHash (Broder 1997, "On the resemblance and containment of documents"): for a random
permutation pi of shingle hashes, P[min pi(A) = min pi(B)] = J(A, B), the Jaccard
similarity of the shingle sets. With k independent permutations the fraction of equal
signature slots is an unbiased estimate of J with standard error sqrt(J(1-J)/k).

LSH banding (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3.4): the
k slots are cut into b bands of r rows; two documents become a candidate pair when all
r rows of at least one band agree, which happens with probability 1 - (1 - J^r)^b, an
S-curve around the threshold. Candidates are then confirmed when the exact Jaccard of
their shingle sets is >= the threshold, so every reported pair is a true one and LSH
only decides which pairs get compared.

The permutations are those of ``datasketch.MinHash`` (scheme ``affine32``: a MurmurHash3
finaliser, then ``a*h + b mod 2^32`` with seeded ``a``, ``b``), and (b, r) come from
``datasketch``'s own optimiser, so a signature computed here equals the one datasketch
computes for the same shingle hashes (checked in the tests). What is done here instead of
``datasketch.MinHashLSH`` is the bookkeeping: signatures of a whole batch are computed
with numpy and band collisions are found by sorting, not one Python call per document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hilt.data.ngrams import GramBatch, WordBatch, WordHasher, hash_words, mix64, ngram_hashes

_MAX32 = np.uint32(0xFFFFFFFF)
_BATCH_DOCS = 4096
_CHUNK_SHINGLES = 8192
# Buckets larger than this contribute a star of pairs (first member with each other)
# instead of every pair, which keeps a pathological bucket from costing O(size^2).
_MAX_BUCKET_FOR_ALL_PAIRS = 64


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


def _fmix32(hv: np.ndarray) -> np.ndarray:
    # MurmurHash3 fmix32, as datasketch applies it before its affine permutations.
    hv = hv ^ (hv >> np.uint32(16))
    hv = hv * np.uint32(0x85EBCA6B)
    hv = hv ^ (hv >> np.uint32(13))
    hv = hv * np.uint32(0xC2B2AE35)
    return hv ^ (hv >> np.uint32(16))


def shingle_values(grams: GramBatch) -> np.ndarray:
    """The 32-bit values fed to MinHash (the low half of each 64-bit shingle hash)."""
    return (grams.hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def signatures_of_grams(grams: GramBatch, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signatures (n_docs x num_perm, uint32); documents without shingles keep
    the all-max signature, as an empty ``datasketch.MinHash`` does.

    All permutations are applied to a chunk of documents at once by broadcasting,
    ``a[:, None] * h[None, :] + b[:, None]`` (permutations x shingles), and the minimum
    per document is one ``minimum.reduceat`` along the shingles. Chunks hold about
    ``_CHUNK_SHINGLES`` shingles so the (num_perm x chunk) buffer stays in cache and is
    reused; one pass over all shingles at once would stream hundreds of MB through
    memory per permutation block and be ~10x slower.
    """
    num_perm = len(a)
    n_docs = grams.n_docs
    sig = np.full((n_docs, num_perm), _MAX32, dtype=np.uint32)
    if len(grams.hashes) == 0:
        return sig
    hv = _fmix32(shingle_values(grams))
    offsets = grams.offsets()
    a_col, b_col = a[:, None], b[:, None]
    buffer = np.empty((num_perm, _CHUNK_SHINGLES), dtype=np.uint32)
    first = 0
    with np.errstate(over="ignore"):
        while first < n_docs:
            # Documents [first, last) hold at most _CHUNK_SHINGLES shingles (at least one
            # document, however long).
            last = int(np.searchsorted(offsets, offsets[first] + _CHUNK_SHINGLES,
                                       side="right")) - 1
            last = min(max(last, first + 1), n_docs)
            lo, hi = int(offsets[first]), int(offsets[last])
            if hi > lo:
                if hi - lo > buffer.shape[1]:
                    buffer = np.empty((num_perm, hi - lo), dtype=np.uint32)
                permuted = buffer[:, :hi - lo]
                np.multiply(a_col, hv[None, lo:hi], out=permuted)
                permuted += b_col
                has = offsets[first + 1:last + 1] > offsets[first:last]
                starts = offsets[first:last][has] - lo
                block = sig[first:last]
                block[has] = np.minimum.reduceat(permuted, starts, axis=1).T
            first = last
    return sig


WordsOf = Callable[[np.ndarray], WordBatch]


def texts_words(texts: Sequence[str]) -> WordsOf:
    """``words_of`` for a list of texts: tokenise and hash the requested ones."""
    hasher = WordHasher()
    return lambda idx: hash_words([texts[i] for i in idx.tolist()], hasher)


def signatures_of(n_docs: int, words_of: WordsOf, *, shingle_words: int, num_perm: int,
                  seed: int) -> np.ndarray:
    a, b = permutations(num_perm, seed)
    out = np.empty((n_docs, num_perm), dtype=np.uint32)
    for lo in range(0, n_docs, _BATCH_DOCS):
        idx = np.arange(lo, min(n_docs, lo + _BATCH_DOCS))
        grams = ngram_hashes(words_of(idx), shingle_words, short_docs="whole")
        out[lo:lo + len(idx)] = signatures_of_grams(grams, a, b)
    return out


def signatures(texts: Sequence[str], *, shingle_words: int, num_perm: int, seed: int
               ) -> np.ndarray:
    return signatures_of(len(texts), texts_words(texts), shingle_words=shingle_words,
                         num_perm=num_perm, seed=seed)


# Weights of false-positive and false-negative probability mass when choosing (b, r).
# Candidates are confirmed with the exact Jaccard of their shingle sets, so a false
# positive costs one set comparison while a false negative is a duplicate left in the
# data: weigh recall heavily (at t = 0.8, 128 permutations: b = 16, r = 8, a pair with
# J = 0.8 becomes a candidate with probability 0.95, one with J = 0.5 with 0.06).
LSH_WEIGHTS = (0.05, 0.95)


def band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive and negative mass."""
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(threshold, num_perm, *LSH_WEIGHTS)
    return int(bands), int(rows)


def _pairs_in_groups(order: np.ndarray, keys_sorted: np.ndarray) -> np.ndarray:
    """Index pairs (i < j by position in ``order``) that share a key; (m, 2) int64."""
    n = len(keys_sorted)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    boundary = np.flatnonzero(np.diff(keys_sorted) != 0) + 1
    starts = np.concatenate([[0], boundary])
    sizes = np.diff(np.concatenate([starts, [n]]))
    multi = sizes > 1
    starts, sizes = starts[multi], sizes[multi]
    if len(starts) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    small = sizes <= _MAX_BUCKET_FOR_ALL_PAIRS
    parts = []
    # Every pair inside small buckets: member p pairs with the members after it.
    s_start, s_size = starts[small], sizes[small]
    if len(s_start):
        member = _ranges(s_start, s_size)
        group_end = np.repeat(s_start + s_size, s_size)
        follow = group_end - member - 1
        left = np.repeat(member, follow)
        first_right = np.repeat(member + 1, follow)
        within = np.arange(len(left)) - np.repeat(np.cumsum(follow) - follow, follow)
        parts.append(np.stack([left, first_right + within], axis=1))
    b_start, b_size = starts[~small], sizes[~small]
    if len(b_start):
        member = _ranges(b_start, b_size)
        head = np.repeat(b_start, b_size)
        keep = member != head
        parts.append(np.stack([head[keep], member[keep]], axis=1))
    pos_pairs = np.concatenate(parts)
    pairs = order[pos_pairs]
    return np.sort(pairs, axis=1)


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    total = int(sizes.sum())
    return np.repeat(starts, sizes) + (np.arange(total) - np.repeat(np.cumsum(sizes) - sizes,
                                                                    sizes))


def candidate_pairs(sig: np.ndarray, bands: int, rows: int,
                    active: np.ndarray | None = None) -> np.ndarray:
    """Pairs of documents (i < j) that agree on every row of at least one band."""
    n_docs = sig.shape[0]
    idx = np.arange(n_docs) if active is None else np.flatnonzero(active)
    found = []
    for band in range(bands):
        block = sig[idx, band * rows:(band + 1) * rows].astype(np.uint64)
        key = np.zeros(len(idx), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(rows):
                key = mix64(key ^ block[:, j])
        order = np.argsort(key, kind="stable")
        found.append(idx[_pairs_in_groups(order, key[order])])
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.concatenate(found)
    if len(pairs) == 0:
        return pairs
    code = pairs[:, 0].astype(np.int64) * n_docs + pairs[:, 1]
    code = np.unique(code)
    return np.stack([code // n_docs, code % n_docs], axis=1)


def exact_jaccard(words_of: WordsOf, pairs: np.ndarray, shingle_words: int) -> np.ndarray:
    """Jaccard similarity of the shingle sets of each pair (only the paired documents
    are shingled again, from their word hashes)."""
    out = np.empty(len(pairs), dtype=np.float64)
    if len(pairs) == 0:
        return out
    involved = np.unique(pairs)
    sets: dict[int, set[int]] = {}
    for lo in range(0, len(involved), _BATCH_DOCS):
        idx = involved[lo:lo + _BATCH_DOCS]
        grams = ngram_hashes(words_of(idx), shingle_words, short_docs="whole")
        offsets = grams.offsets().tolist()
        values = grams.hashes.tolist()
        sets.update((doc, set(values[offsets[k]:offsets[k + 1]]))
                    for k, doc in enumerate(idx.tolist()))
    for n, (i, j) in enumerate(pairs.tolist()):
        a, b = sets[i], sets[j]
        inter = len(a & b)
        out[n] = inter / (len(a) + len(b) - inter) if (a or b) else 1.0
    return out


@dataclass(frozen=True)
class NearDuplicates:
    """Confirmed similar pairs and, per document, the kept document it duplicates."""

    pairs: np.ndarray  # (m, 2) int64, i < j, Jaccard >= threshold
    similarity: np.ndarray  # (m,) exact Jaccard of the shingle sets
    duplicate_of: np.ndarray  # (n,) int64: -1 if kept, else index of the kept document


def near_duplicates(texts: Sequence[str], *, threshold: float, num_perm: int = 128,
                    shingle_words: int = 5, seed: int = 1) -> NearDuplicates:
    """Near-duplicate clusters of ``texts``; see :func:`near_duplicates_of`."""
    return near_duplicates_of(len(texts), texts_words(texts), threshold=threshold,
                              num_perm=num_perm, shingle_words=shingle_words, seed=seed)


def near_duplicates_of(n: int, words_of: WordsOf, *, threshold: float, num_perm: int = 128,
                       shingle_words: int = 5, seed: int = 1) -> NearDuplicates:
    """Near-duplicate clusters; the lowest index of each cluster is kept.

    ``words_of(indices)`` gives the word hashes of those documents (so callers that
    tokenised their texts already pass them in instead of text). Callers order the
    documents by priority, so "lowest index" means "best record". Clusters are
    connected components of the confirmed-pair graph (single linkage), the usual
    choice in corpus deduplication (Lee et al. 2022, "Deduplicating training data makes
    language models better").
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sig = signatures_of(n, words_of, shingle_words=shingle_words, num_perm=num_perm,
                        seed=seed)
    bands, rows = band_params(threshold, num_perm)
    nonempty = ~(sig == _MAX32).all(axis=1)
    pairs = candidate_pairs(sig, bands, rows, active=nonempty)
    del sig
    sim = exact_jaccard(words_of, pairs, shingle_words)
    keep = sim >= threshold
    pairs, sim = pairs[keep], sim[keep]
    duplicate_of = np.full(n, -1, dtype=np.int64)
    if len(pairs):
        graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
                           shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        first = np.full(comp.max() + 1, n, dtype=np.int64)
        np.minimum.at(first, comp, np.arange(n))
        root = first[comp]
        dup = root != np.arange(n)
        duplicate_of[dup] = root[dup]
    return NearDuplicates(pairs, sim, duplicate_of)
