"""Benchmark: building a dataset version at scale, and MinHash LSH against all-pairs.

    python -m benchmarks.selection            # 1M events, 10k held-out items, 10k subset
    python -m benchmarks.selection --quick    # 50k events, 2k items, 2k subset

Measured, in one run:

1. the pure selection pipeline (filter, consent, examples, PII, exact dedup, MinHash
   LSH near-dup removal, 13-gram decontamination, balance, split) plus writing the
   canonical records file and hashing it (the version id), on N synthetic events with
   one preference label each; wall time per step and peak resident memory
   (``ru_maxrss``, which includes generating the synthetic data);
2. the store path (ingest events, register the held-out suite, ``build_version`` with
   lineage rows and the audit entry) on SQLite for a smaller number of events;
3. on a subset, near-duplicate pairs from LSH against the exact pairs from the naive
   all-pairs baseline (Python set Jaccard on the same word 5-gram shingles, every pair),
   and against an exact vectorised all-pairs (sparse X X^T): recall, precision and the
   speed ratio.

Synthetic events: Zipf-distributed words over a 20k-word vocabulary, prompts of 12-25
words, two responses of 15-35 words; 4% exact copies (different case/punctuation), 4%
near-copies (one word of a response changed), 3% without ``train`` consent, 0.5% with an
e-mail address, 0.5% whose prompt embeds a held-out item.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hilt.data.ngrams import text_ngram_hashes
from hilt.data.records import Candidate
from hilt.data.spec import parse_spec
from hilt.review.records import FinalLabelRecord

VOCAB = 20_000
THRESHOLD = 0.8


def vocabulary(rng: np.random.Generator) -> np.ndarray:
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zu", "pa",
                          "di", "go", "he", "ji", "be", "fa", "qu", "xi", "wo", "yo"])
    parts = rng.integers(0, len(syllables), size=(VOCAB, 4))
    lengths = rng.integers(1, 5, size=VOCAB)
    words = ["".join(syllables[p[:n]]) + str(i % 7) for i, (p, n) in
             enumerate(zip(parts, lengths, strict=True))]
    return np.array(words, dtype=object)


def _texts(rng: np.random.Generator, vocab: np.ndarray, n: int, lo: int, hi: int) -> list[str]:
    lengths = rng.integers(lo, hi + 1, size=n)
    ranks = np.minimum(rng.zipf(1.2, size=int(lengths.sum())), VOCAB) - 1
    words = vocab[ranks]
    out, pos = [], 0
    for length in lengths.tolist():
        out.append(" ".join(words[pos:pos + length]))
        pos += length
    return out


def synthetic(n: int, n_heldout: int, seed: int = 7
              ) -> tuple[list[Candidate], list[tuple[str, str, str]]]:
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    heldout = [("bench-suite@1", f"item{i}", t)
               for i, t in enumerate(_texts(rng, vocab, n_heldout, 15, 30))]
    prompts = _texts(rng, vocab, n, 12, 25)
    first = _texts(rng, vocab, n, 15, 35)
    second = _texts(rng, vocab, n, 15, 35)
    kind = rng.random(n)
    source = rng.integers(0, max(1, n // 2), size=n)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    cands = []
    for i in range(n):
        p, a, b = prompts[i], first[i], second[i]
        k = kind[i]
        consent = frozenset({"train", "review"})
        if k < 0.04 and i > 0:  # exact copy, other spelling
            j = int(source[i]) % i
            p, a, b = prompts[j].upper() + "!", first[j], second[j]
        elif k < 0.08 and i > 0:  # near copy: one word of a response changed
            j = int(source[i]) % i
            words = first[j].split()
            words[len(words) // 2] = "changed"
            p, a, b = prompts[j], " ".join(words), second[j]
        elif k < 0.11:
            consent = frozenset({"review"})
        elif k < 0.115:
            a = a + " write to someone.name@example.org"
        elif k < 0.12:
            p = "please answer: " + heldout[int(source[i]) % n_heldout][2]
        eid = f"ev{i:08d}"
        label = FinalLabelRecord(
            label_id=f"lb{i}", event_id=eid, task_id=f"t{i}", rubric_id="helpful",
            rubric_version=1 + (i % 2), question_id="pref", question_kind="preference",
            value={"chosen": 0, "rejected": 1}, provenance="majority",
            confidence=0.6 + 0.4 * ((i * 7919) % 100) / 100, review_ids=(f"rv{i}",),
            adjudication_id=None, policy_version="policy-3", decided_at=now)
        cands.append(Candidate(event_id=eid, created_at=now, consent=consent,
                               messages=[{"role": "user", "content": p}], responses=[a, b],
                               subject_id=f"s{i % 50_000}", labels=[label],
                               slice=("chat", "code", "safety")[i % 3]))
    return cands, heldout


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


SPEC = {"name": "bench", "kind": "preference",
        "dedup": {"threshold": THRESHOLD, "num_perm": 128, "shingle_words": 5},
        "decontamination": {"ngram": 13}, "balance": {"strategy": "none"},
        "split": {"validation_fraction": 0.05}}


def bench_pipeline(n: int, n_heldout: int) -> dict[str, object]:
    from hilt.data.build import write_records
    from hilt.data.pipeline import run_selection

    t0 = time.perf_counter()
    cands, heldout = synthetic(n, n_heldout)
    gen = time.perf_counter() - t0
    spec = parse_spec(SPEC)
    timings: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_selection(cands, spec, heldout, timings=timings)
    select_s = time.perf_counter() - t0
    del cands
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        version_id, _rows = write_records(result.examples, Path(tmp))
        timings["write_and_hash"] = time.perf_counter() - t1
    cpu_s = time.process_time() - c0
    steps = {s.step: s.removed for s in result.steps}
    return {"n": n, "heldout": n_heldout, "generate_s": gen, "select_s": select_s,
            "total_s": select_s + timings["write_and_hash"], "cpu_s": cpu_s, "timings": timings,
            "records": len(result.examples), "removed": steps, "peak_rss_gb": peak_rss_gb(),
            "version": version_id[:16]}


def bench_store(n: int, n_heldout: int) -> dict[str, object]:
    from hilt.data.build import build_version
    from hilt.evals.files import SuiteItem
    from hilt.evals.registry import register_suite
    from hilt.events.ingest import store_events
    from hilt.events.model import FeedbackEvent
    from hilt.store.db import make_engine, migrate, transaction

    cands, heldout = synthetic(n, n_heldout, seed=11)
    labels = [lb for c in cands for lb in c.labels]
    events = [FeedbackEvent.model_validate({
        "id": c.event_id, "interaction": {"prompt": c.messages[0]["content"]},  # type: ignore[index]
        "responses": [{"text": r} for r in c.responses],
        "context": {"consent": sorted(c.consent), "subject_id": c.subject_id,
                    "metadata": {"slice": c.slice}},
        "created_at": c.created_at.isoformat()}) for c in cands]

    def label_source(_session: object, **_filters: object) -> list[FinalLabelRecord]:
        return labels

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        t0 = time.perf_counter()
        with transaction(engine) as session:
            store_events(session, events, actor="bench")
        ingest_s = time.perf_counter() - t0
        with transaction(engine) as session:
            register_suite(session, [SuiteItem(item, text, "s", "comply", i + 1)
                                     for i, (_s, item, text) in enumerate(heldout)],
                           name="bench-suite", version="1", actor="bench")
        t0 = time.perf_counter()
        with transaction(engine) as session:
            built = build_version(session, parse_spec(SPEC), actor="bench",
                                  label_source=label_source, directory=Path(tmp) / "ds")
        build_s = time.perf_counter() - t0
        engine.dispose()
    return {"n": n, "ingest_s": ingest_s, "build_s": build_s, "records": built.record_count}


def _shingle_sets(texts: list[str]) -> list[set[int]]:
    grams = text_ngram_hashes(texts, 5)
    offsets = grams.offsets()
    values = grams.hashes.tolist()
    return [set(values[offsets[i]:offsets[i + 1]]) for i in range(len(texts))]


def bench_pairs(n: int) -> dict[str, object]:
    from scipy import sparse

    from hilt.data.examples import candidate_examples
    from hilt.data.minhash import near_duplicates

    cands, _ = synthetic(n, 10, seed=3)
    spec = parse_spec(SPEC)
    texts = [ex.dedup_text() for c in cands for ex in candidate_examples(c, spec)]
    t0 = time.perf_counter()
    lsh = near_duplicates(texts, threshold=THRESHOLD, num_perm=128, shingle_words=5)
    lsh_s = time.perf_counter() - t0
    lsh_pairs = {tuple(p) for p in lsh.pairs.tolist()}

    t0 = time.perf_counter()
    sets = _shingle_sets(texts)
    naive: set[tuple[int, int]] = set()
    for i in range(len(sets)):
        a = sets[i]
        if not a:
            continue
        for j in range(i + 1, len(sets)):
            b = sets[j]
            inter = len(a & b)
            if inter and inter / (len(a) + len(b) - inter) >= THRESHOLD:
                naive.add((i, j))
    naive_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    grams = text_ngram_hashes(texts, 5)
    _, cols = np.unique(grams.hashes, return_inverse=True)
    x = sparse.csr_matrix((np.ones(len(cols), dtype=np.int32), (grams.doc, cols)),
                          shape=(len(texts), int(cols.max()) + 1))
    x.data[:] = 1  # repeated shingles count once (sets)
    x.sum_duplicates()
    x.data[:] = 1
    sizes = np.asarray(x.sum(axis=1)).ravel()
    inter = sparse.triu(x @ x.T, k=1).tocoo()
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    ok = jac >= THRESHOLD
    matrix_pairs = set(zip(inter.row[ok].tolist(), inter.col[ok].tolist(), strict=True))
    matrix_s = time.perf_counter() - t0
    assert matrix_pairs == naive, "the two exact baselines disagree"

    found = len(lsh_pairs & naive)
    recall = found / len(naive) if naive else 1.0
    precision = found / len(lsh_pairs) if lsh_pairs else 1.0
    return {"n": len(texts), "exact_pairs": len(naive), "lsh_pairs": len(lsh_pairs),
            "recall": recall, "precision": precision,
            "recall_ci": wilson(found, len(naive)), "precision_ci": wilson(found, len(lsh_pairs)),
            "lsh_s": lsh_s, "naive_s": naive_s, "matrix_s": matrix_s}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (Wilson 1927)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~1 min)")
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.events or (50_000 if args.quick else 1_000_000)
    n_heldout = 2_000 if args.quick else 10_000
    n_store = 5_000 if args.quick else 50_000
    n_pairs = 2_000 if args.quick else 10_000

    pairs = bench_pairs(n_pairs)
    store = bench_store(n_store, n_heldout)
    pipe = bench_pipeline(n, n_heldout)

    print(f"\n## Selection pipeline, {pipe['n']:,} synthetic events, "
          f"{pipe['heldout']:,} held-out items (pure path, one process)")
    print("| step | seconds |\n|---|---|")
    for step, secs in pipe["timings"].items():  # type: ignore[attr-defined]
        print(f"| {step} | {secs:.1f} |")
    print(f"| **total (select + write + hash), wall** | **{pipe['total_s']:.1f}** |")
    print(f"| **total, CPU time of the process** | **{pipe['cpu_s']:.1f}** |")
    print(f"\nload average during the run: {os.getloadavg()} on {os.cpu_count()} cores "
          "(wall time includes waiting for a shared CPU; CPU time does not)")
    print(f"\nrecords kept {pipe['records']:,}; removed per step {pipe['removed']}; "
          f"peak RSS {pipe['peak_rss_gb']:.2f} GB (incl. synthetic data, generated in "
          f"{pipe['generate_s']:.0f} s); target <= 180 s and <= 4 GB")
    print(f"\n## Store path (SQLite), {store['n']:,} events: ingest {store['ingest_s']:.1f} s, "
          f"build_version {store['build_s']:.1f} s, {store['records']:,} records")
    print(f"\n## Near-duplicate pairs on {pairs['n']:,} records (Jaccard >= {THRESHOLD}, "
          "word 5-gram shingles)")
    print("| method | pairs | seconds | vs LSH |\n|---|---|---|---|")
    print(f"| MinHash LSH (128 perm) | {pairs['lsh_pairs']} | {pairs['lsh_s']:.2f} | 1.0x |")
    print(f"| naive all-pairs, Python sets | {pairs['exact_pairs']} | {pairs['naive_s']:.2f} | "
          f"{pairs['naive_s'] / pairs['lsh_s']:.0f}x slower |")  # type: ignore[operator]
    print(f"| exact all-pairs, sparse X X^T | {pairs['exact_pairs']} | {pairs['matrix_s']:.2f} | "
          f"{pairs['matrix_s'] / pairs['lsh_s']:.1f}x |")  # type: ignore[operator]
    rc, pc = pairs["recall_ci"], pairs["precision_ci"]
    print(f"\nLSH recall {pairs['recall']:.4f} (95% CI {rc[0]:.4f}-{rc[1]:.4f}), "  # type: ignore[index]
          f"precision {pairs['precision']:.4f} (95% CI {pc[0]:.4f}-{pc[1]:.4f}) "  # type: ignore[index]
          "against the exact pairs")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
