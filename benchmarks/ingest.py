"""Ingest throughput: hilt's whole path against the raw driver's bulk insert.

    python -m benchmarks.ingest [--n 100000] [--quick]

hilt's number covers everything ``hilt ingest FILE`` does: read and parse the JSONL,
validate each event with pydantic, derive ids, check for existing ids, insert, audit.
The raw baseline reads the same file, ``json.loads`` each line and bulk-inserts the
same columns with the driver alone (sqlite3 ``executemany``; psycopg ``COPY``) into an
identical, freshly migrated table. Both run in this process, one after the other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from hilt.events.ingest import ingest_file
from hilt.store.db import make_engine, migrate

PG_URL = os.environ.get("HILT_BENCH_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
COLUMNS = ("id", "content_hash", "created_at", "ingested_at", "source", "subject_id",
           "model_version", "policy_version", "prompt_template_id",
           "prompt_template_version", "role_format", "consent_scopes", "ingest_batch",
           "payload")
WORDS = ("the", "model", "answer", "user", "please", "explain", "why", "how", "safe", "policy",
         "data", "review", "code", "python", "error", "result", "table", "chart",
         "summary", "example", "question")


def make_file(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for i in range(n):
            prompt = " ".join(rng.choices(WORDS, k=30))
            fh.write(json.dumps({
                "id": f"bench-{i}",
                "interaction": {"prompt": f"{i} {prompt}"},
                "responses": [{"text": " ".join(rng.choices(WORDS, k=50))}],
                "feedback": [{"kind": "thumbs", "up": rng.random() < 0.8}],
                "context": {"model_version": "m-1", "policy_version": "p-3",
                            "prompt_template_id": "chat", "prompt_template_version": "2",
                            "role_format": "chatml", "source": "bench",
                            "subject_id": f"s{i % 5000}", "consent": ["review", "train"],
                            "decoder": {"temperature": 0.7, "top_p": 0.95, "seed": i}},
                "scores": {"guardrail": rng.random()},
                "created_at": "2026-11-01T12:00:00+00:00"}) + "\n")


def raw_rows(path: Path) -> list[tuple]:
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    rows = []
    with open(path) as fh:
        for line in fh:
            rec = json.loads(line)
            ctx = rec["context"]
            payload = json.dumps(rec)
            rows.append((rec["id"], hashlib.sha256(payload.encode()).hexdigest(),
                         rec["created_at"], now, ctx["source"], ctx["subject_id"],
                         ctx["model_version"], ctx["policy_version"],
                         ctx["prompt_template_id"], ctx["prompt_template_version"],
                         ctx["role_format"], ",review,train,", "raw", payload))
    return rows


def bench_sqlite(path: Path, workdir: Path) -> tuple[float, float]:
    hilt_db = workdir / "hilt.db"
    engine = make_engine(f"sqlite:///{hilt_db}")
    migrate(engine)
    t0 = time.perf_counter()
    result = ingest_file(engine, path, actor="bench")
    hilt_s = time.perf_counter() - t0
    assert result.new > 0
    engine.dispose()

    raw_db = workdir / "raw.db"
    engine = make_engine(f"sqlite:///{raw_db}")
    migrate(engine)
    engine.dispose()
    conn = sqlite3.connect(raw_db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    t0 = time.perf_counter()
    rows = raw_rows(path)
    with conn:
        conn.executemany(f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(COLUMNS))})", rows)
    raw_s = time.perf_counter() - t0
    conn.close()
    return hilt_s, raw_s


def bench_postgres(path: Path) -> tuple[float, float] | None:
    import psycopg

    try:
        admin = sa.create_engine(PG_URL)
        admin.connect().close()
    except Exception:
        return None
    times = []
    for mode in ("hilt", "raw"):
        schema = f"hilt_bench_{uuid.uuid4().hex[:8]}"
        with admin.begin() as c:
            c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        try:
            engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
            migrate(engine)
            t0 = time.perf_counter()
            if mode == "hilt":
                ingest_file(engine, path, actor="bench")
            else:
                rows = raw_rows(path)
                dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
                with psycopg.connect(dsn, options=f"-csearch_path={schema}") as conn:
                    with conn.cursor() as cur, cur.copy(
                            f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                    conn.commit()
            times.append(time.perf_counter() - t0)
            engine.dispose()
        finally:
            with admin.begin() as c:
                c.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10k events")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.n
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = workdir / "events.jsonl"
        make_file(path, n)
        results = [("SQLite", "sqlite3 executemany", *bench_sqlite(path, workdir))]
        pg = bench_postgres(path)
        if pg:
            results.append(("PostgreSQL", "psycopg COPY", *pg))
    print(f"\nIngest of {n:,} events from JSONL (hilt: parse + validate + dedup + insert + "
          "audit; raw: json.loads + driver bulk insert)\n")
    print("| database   | baseline            | hilt ev/s | raw ev/s | hilt/raw |")
    print("|------------|---------------------|-----------|----------|----------|")
    for name, base, hilt_s, raw_s in results:
        print(f"| {name:<10} | {base:<19} | {n / hilt_s:>9,.0f} | {n / raw_s:>8,.0f} "
              f"| {raw_s / hilt_s:>7.0%} |")
    if not pg:
        print("\nPostgreSQL not reachable: skipped.")


if __name__ == "__main__":
    main()
