"""Near-duplicate detection and decontamination on crafted texts."""

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from hilt.data import minhash
from hilt.data.decontam import HeldoutIndex
from hilt.data.ngrams import normalise, text_ngram_hashes, words

BASE = ("the committee reviewed the proposal on renewable energy subsidies and decided "
        "to postpone the final vote until the spring session because several members "
        "asked for an independent cost estimate from the treasury")


def test_signatures_equal_datasketch() -> None:
    texts = [BASE, BASE.replace("spring", "autumn"), "short text", ""]
    grams = text_ngram_hashes(texts, 5)
    a, b = minhash.permutations(64, 3)
    sig = minhash.signatures_of_grams(grams, a, b)
    values = minhash.shingle_values(grams)
    for d in range(len(texts)):
        ref = MinHash(num_perm=64, seed=3, hashfunc=lambda x: x, scheme="affine32")
        ref.update_batch([int(v) for v in values[grams.doc == d]])
        assert np.array_equal(ref.hashvalues, sig[d])


def test_lsh_candidates_match_datasketch_index() -> None:
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    docs = [" ".join(rng.choice(vocab, 40)) for _ in range(60)]
    docs += [d.replace(d.split()[20], "zz", 1) for d in docs[:20]]  # near copies
    sig = minhash.signatures(docs, shingle_words=3, num_perm=128, seed=1)
    bands, rows = minhash.band_params(0.7, 128)
    ours = {tuple(p) for p in minhash.candidate_pairs(sig, bands, rows).tolist()}
    lsh = MinHashLSH(threshold=0.7, num_perm=128, params=(bands, rows))
    hashes = []
    for i, row in enumerate(sig):
        m = MinHash(num_perm=128, seed=1, hashvalues=row, scheme="affine32")
        hashes.append(m)
        lsh.insert(i, m)
    theirs = {tuple(sorted((i, j))) for i, m in enumerate(hashes) for j in lsh.query(m) if j != i}
    assert ours == theirs
    assert len(ours) >= 20


def test_near_duplicates_found_and_lowest_index_kept() -> None:
    near = BASE.replace("spring", "autumn")
    other = "a completely different text about cooking pasta with garlic and olive oil " * 2
    result = minhash.near_duplicates([other, BASE, near, BASE + " indeed"], threshold=0.6)
    assert result.duplicate_of.tolist() == [-1, -1, 1, 1]
    assert set(map(tuple, result.pairs.tolist())) == {(1, 2), (1, 3), (2, 3)}
    assert (result.similarity >= 0.6).all()


def test_lsh_recall_against_all_pairs() -> None:
    rng = np.random.default_rng(5)
    vocab = [f"t{i}" for i in range(2000)]
    docs = [" ".join(rng.choice(vocab, 60)) for _ in range(150)]
    for i in range(50):  # one word changed: Jaccard of 5-shingles ~ 0.85
        w = docs[i].split()
        w[30] = "changed"
        docs.append(" ".join(w))
    grams = text_ngram_hashes(docs, 5)
    off = grams.offsets()
    sets = [set(grams.hashes[off[i]:off[i + 1]].tolist()) for i in range(len(docs))]
    exact = {(i, j) for i in range(len(docs)) for j in range(i + 1, len(docs))
             if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.8}
    found = {tuple(p) for p in minhash.near_duplicates(docs, threshold=0.8).pairs.tolist()}
    assert found <= exact  # confirmed by exact Jaccard: no false pairs
    assert len(found) / len(exact) >= 0.9
    assert len(exact) == 50


def test_normalisation() -> None:
    assert words("Ｈｅｌｌｏ, WORLD!  again") == ["hello", "world", "again"]
    assert normalise("A  b\tC.") == "a b c"


def _index(texts: list[str], **kw: int) -> HeldoutIndex:
    return HeldoutIndex([("suite@1", f"i{n}", t) for n, t in enumerate(texts)], **kw)


def test_thirteen_gram_overlap_is_caught_despite_case_and_punctuation() -> None:
    index = _index([BASE])
    inside = "Preface. " + " ".join(BASE.split()[3:16]).upper() + "!! and more words here"
    assert index.match([inside]).tolist() == [0]


def test_twelve_shared_words_are_not_contamination() -> None:
    index = _index([BASE])
    twelve = "zz " + " ".join(BASE.split()[3:15]) + " zz"
    assert index.match([twelve]).tolist() == [-1]


def test_short_items_matched_whole() -> None:
    index = _index(["How do I kill a Python process?", "Hi there"])
    texts = ["Quick one: how do I kill a python process? thanks",
             "hi there", "hi there friend", "how do I kill time"]
    assert index.match(texts).tolist() == [0, 1, -1, -1]


@pytest.mark.parametrize("n", [5, 8, 13, 20])
def test_any_ngram_setting_catches_verbatim_copies(n: int) -> None:
    index = _index([BASE, "tiny one", "five words exactly right here"], ngram=n)
    hits = index.match([f"say: {BASE} ok", "Tiny one.", "so five words exactly right here ok"])
    assert hits.tolist() == [0, 1, 2]


def test_empty_index_and_fields() -> None:
    assert _index([]).match(["anything"]).tolist() == [-1]
    assert _index([BASE]).match([]).tolist() == []
