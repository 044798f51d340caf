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


def test_batched_tokeniser_equals_per_text_words() -> None:
    from hilt.data.ngrams import WordHasher, hash_words, tokenise

    docs = ["Hello, World!", "", "ÉCOLE straße ﬁne Ǆ", "tab\tand\nnewline", "x",
            "nul\x00inside", "HILTSEP is just a word", "  "]
    for batch in (docs, docs[:5], docs[:1], []):
        tokens = tokenise(batch)
        got = [tokens.flat[a:b] for a, b in zip(tokens.starts.tolist(), tokens.ends.tolist(),
                                                 strict=True)]
        assert got == [words(d) for d in batch]
    hasher = WordHasher(max_words=3)  # forces the cache to be emptied on the way
    batched = hash_words(docs, hasher)
    for i, d in enumerate(docs):
        alone = hash_words([d])
        assert batched.hashes[batched.offsets[i]:batched.offsets[i + 1]].tolist() == \
            alone.hashes.tolist()


def test_text_features_match_the_per_text_definitions() -> None:
    from data_factories import make_candidate, make_label

    from hilt.data.balance import _group_key, unit_hash
    from hilt.data.examples import candidate_examples
    from hilt.data.pipeline import near_dedup
    from hilt.data.records import Example
    from hilt.data.spec import parse_spec
    from hilt.data.textfeatures import analyse_texts

    spec = parse_spec({"name": "t", "kind": "preference"})
    prompts = [BASE, BASE.upper() + "!!", "Short one", BASE + " extra words here"]
    examples: list[Example] = []
    for i, p in enumerate(prompts):
        c = make_candidate(f"e{i}", p, [f"answer {i} " + BASE, "no"],
                           labels=[make_label(f"e{i}", {"chosen": 0, "rejected": 1})])
        if i == 3:  # a conversation: the prompt is rendered as "role: text" lines
            c.messages = [{"role": "system", "content": "Be brief"},
                          {"role": "user", "content": p}]
        examples.extend(candidate_examples(c, spec))
    cls = Example(key="k", kind="classification", source="label_class", event_id="e9",
                  subject_id=None, messages=[], slice="s", template={}, labels=(),
                  policy_version=None, confidence=1.0, text="Some Text, here", label="x")
    examples.append(cls)
    feats = analyse_texts(examples, spec.split)
    group = _group_key(spec.split)
    assert feats.prompt_units is not None
    for row, ex in enumerate(examples):
        assert feats.prompt_units[row] == unit_hash(spec.split.seed, group(ex))
    # Exact digests agree exactly when kind, label, the fields and each field's
    # normalised words agree.
    def exact(ex: Example) -> tuple[object, ...]:
        return (ex.kind, ex.label, [m["role"] for m in ex.messages],
                [n for n in Example.TEXT_FIELDS if getattr(ex, n) is not None],
                [words(t) for t in ex.texts()])

    for i, a in enumerate(examples):
        for j, b in enumerate(examples):
            same = exact(a) == exact(b)
            assert (feats.exact_digests[i] == feats.exact_digests[j]) == same
    # Near dedup from the shared word hashes equals near dedup from the texts.
    for row, ex in enumerate(examples):
        ex.text_row = row
    kept, _ = near_dedup(list(examples), spec, feats)
    direct = minhash.near_duplicates([ex.dedup_text() for ex in examples],
                                     threshold=spec.dedup.threshold)
    assert [ex.key for ex in kept] == [ex.key for ex, d in zip(examples, direct.duplicate_of,
                                                                strict=True)
                                       if d < 0 or examples[d].label != ex.label]


def test_joined_pii_scan_equals_per_field_scan() -> None:
    from hilt.data.pii import RegexPiiDetector

    detector = RegexPiiDetector()
    fields = ["mail me: a.b@example.org", "call +44 20 7946 0958", "4111 1111 1111 1111",
              "::1 and 10.0.0.1", "nothing here 12", "1234567", "2001:db8::1", "",
              "see section", "14.9.3.1", "at 2024-01-15", "10:30 415-555-2671"]
    for i in range(len(fields)):
        for j in range(len(fields)):
            pair = [fields[i], fields[j]]
            assert bool(detector.find("\n".join(pair))) == any(detector.find(f) for f in pair)
