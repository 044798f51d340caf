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
finaliser, then ``a*h + b mod 2^32`` with seeded ``a``, ``b``), so a signature computed
here equals the one datasketch computes for the same shingle hashes (checked in the
tests). (b, r) are chosen for recall at the threshold itself, where pairs are hardest
to find: of the (b, r) that make a pair with J = t a candidate with probability at least
1 - ``MAX_MISS_AT_THRESHOLD``, the one with the fewest candidates below the threshold
(:func:`band_params`); pairs above the threshold are missed even less often. What is
done here instead of ``datasketch.MinHashLSH`` is the bookkeeping: signatures of a whole
batch are computed with numpy and band collisions are found by sorting, not one Python
call per document.
"""

from __future__ import annotations

import math
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


# The largest probability that LSH leaves a pair with Jaccard exactly at the threshold
# out of the candidates. Candidates are confirmed with the exact Jaccard of their shingle
# sets, so a false candidate costs one set comparison while a missed pair is a
# duplicate left in the data. At t = 0.8 with 128 permutations this gives b = 21,
# r = 6: a pair at J = 0.8 is missed with probability 0.0017 (0.00005 at J = 0.85), one
# at J = 0.5 is compared with probability 0.28. (datasketch's optimiser, which weighs
# the whole curve, gives b = 16, r = 8 there: 5.3% of the pairs at J = 0.8 missed.)
MAX_MISS_AT_THRESHOLD = 0.002


def miss_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that a pair of Jaccard ``similarity`` agrees on no whole band."""
    return float((1.0 - similarity ** rows) ** bands)


def band_params(threshold: float, num_perm: int,
                max_miss: float = MAX_MISS_AT_THRESHOLD) -> tuple[int, int]:
    """(bands, rows), bands * rows <= num_perm: for each row count of 2 or more the
    fewest bands that miss a pair at the threshold with probability <= ``max_miss``,
    and of those the one with the least false-candidate mass (the area under the
    candidate probability 1 - (1 - s^r)^b for s in [0, threshold]). When none reaches
    ``max_miss`` (a low threshold, few permutations), the one that misses least.

    Bands of one row are never used: any two texts sharing one minimum would be
    compared, which at a low threshold is most pairs of a corpus."""
    best: tuple[float, int, int] | None = None
    fallback: tuple[float, int, int] | None = None
    for rows in range(2, num_perm + 1):
        most = num_perm // rows
        miss = miss_probability(threshold, most, rows)
        if miss > max_miss:
            if fallback is None or miss < fallback[0]:
                fallback = (miss, most, rows)
            continue
        # log P(no band agrees) = bands * log(1 - t^r); t^r > 0 here, as ``most`` bands
        # reach ``max_miss``.
        per_band = math.log1p(-threshold ** rows) if threshold < 1.0 else -math.inf
        bands = min(most, max(1, math.ceil(math.log(max_miss) / per_band)))
        mass = _candidate_mass(threshold, bands, rows)
        if best is None or mass < best[0]:
            best = (mass, bands, rows)
    chosen = best or fallback
    assert chosen is not None  # num_perm >= 2: rows = 2 gives one or the other
    return chosen[1], chosen[2]


def _candidate_mass(threshold: float, bands: int, rows: int, steps: int = 512) -> float:
    """Integral of 1 - (1 - s^r)^b over [0, threshold] (midpoint rule)."""
    s = (np.arange(steps) + 0.5) * (threshold / steps)
    return float((1.0 - (1.0 - s ** rows) ** bands).sum() * (threshold / steps))


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

    pairs: np.ndarray  # (m, 2) int64, i < j, Jaccard >= threshold (any groups)
    similarity: np.ndarray  # (m,) exact Jaccard of the shingle sets
    duplicate_of: np.ndarray  # (n,) int64: -1 if kept, else index of the kept document


def near_duplicates(texts: Sequence[str], *, threshold: float, num_perm: int = 128,
                    shingle_words: int = 5, seed: int = 1,
                    groups: np.ndarray | None = None) -> NearDuplicates:
    """Near-duplicate clusters of ``texts``; see :func:`near_duplicates_of`."""
    return near_duplicates_of(len(texts), texts_words(texts), threshold=threshold,
                              num_perm=num_perm, shingle_words=shingle_words, seed=seed,
                              groups=groups)


def near_duplicates_of(n: int, words_of: WordsOf, *, threshold: float, num_perm: int = 128,
                       shingle_words: int = 5, seed: int = 1,
                       groups: np.ndarray | None = None) -> NearDuplicates:
    """Near-duplicate clusters; the lowest index of each cluster is kept.

    ``words_of(indices)`` gives the word hashes of those documents (so callers that
    tokenised their texts already pass them in instead of text). Callers order the
    documents by priority, so "lowest index" means "best record". Clusters are
    connected components of the confirmed-pair graph (single linkage), the usual
    choice in corpus deduplication (Lee et al. 2022, "Deduplicating training data makes
    language models better").

    ``groups`` (one integer per document), when given, keeps groups apart: only pairs
    within one group link documents, so each group's clusters are found as if the
    other groups were not there (a document is never the duplicate of another group's,
    nor joined to one of its own through another group's). ``pairs`` still lists every
    confirmed pair.
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
    links = pairs if groups is None else pairs[groups[pairs[:, 0]] == groups[pairs[:, 1]]]
    duplicate_of = np.full(n, -1, dtype=np.int64)
    if len(links):
        graph = coo_matrix((np.ones(len(links), dtype=np.int8), (links[:, 0], links[:, 1])),
                           shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        first = np.full(comp.max() + 1, n, dtype=np.int64)
        np.minimum.at(first, comp, np.arange(n))
        root = first[comp]
        dup = root != np.arange(n)
        duplicate_of[dup] = root[dup]
    return NearDuplicates(pairs, sim, duplicate_of)
