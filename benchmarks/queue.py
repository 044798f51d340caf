"""Review queue throughput: hilt's claim against a naive claim, on PostgreSQL and SQLite.

    python -m benchmarks.queue [--quick] [--tasks N] [--workers 1,4,16]
                               [--backends pg,pg-tcp,sqlite] [--processes P]
                               [--methods hilt,hilt-next,naive]

Each run starts from a fresh database holding N open tasks with overlap k = 3 and one
reviewer per worker. Every worker is a thread with a connection of its own (its
process's pool holds one per worker) and loops "claim a task, submit a review" (two
transactions, each with its audit entry) until the queue is empty for it. The workers
are spread over P processes, by default one per CPU core, the way ``hilt serve`` runs
one worker process per core with a thread pool each; ``--processes 0`` gives every
worker a process of its own (on a 2-core machine, 16 worker processes cost about a
third more CPU per cycle: their switching and caches, not the database). Reported per
run:

- cycles/s: claim+submit cycles completed per second of wall time (all workers);
- within k/s: the same, less the leases beyond a task's k (work that does not count
  toward its labels), so a baseline that hands out tasks twice is not credited for it;
- claim p50 / p99: latency of the claim transaction (begin to commit), milliseconds;
- submit p99: latency of the separate submission (none for "hilt-next"), milliseconds;
- double: leases beyond a task's k (a task handed to more reviewers than it needs);
- CPU ms/cycle: CPU time of the workers (sealer included) plus, on PostgreSQL, of their
  server backends and the server's other processes (read from /proc on Linux, so other
  database work on the machine counts too), per cycle: with C cores, C x 1000 / this is
  the most cycles/s the machine can do; in brackets, split between the worker processes
  and the database;
- audit chain: ``hilt audit verify`` after the run and one chained entry per claim and
  per review (entries; pending ones would show as ``+Np``). Each worker runs the audit
  sealer thread that every ``hilt serve`` worker runs on PostgreSQL, so sealing the
  chain is part of the measured work.

Method "hilt-next" is a reviewer who submits and asks for the next task in the same
request (``POST /v1/queue/tasks/{id}/submit?next=true``, :func:`hilt.review.work.
submit_and_next`): one call per cycle, one statement on PostgreSQL. Its "claim" latency is
that whole call's (submit included): the wait between one task and the next.

The baseline "naive" claim reads the best candidate with a plain SELECT and then
decrements its slot counter with an UPDATE — no ``FOR UPDATE SKIP LOCKED`` and no
conditional update — in one ORM transaction (``hilt.store.db.transaction``), audit
entry included; hilt's claim on PostgreSQL is a single statement
(``hilt.review.pg_fast``). Only the claim differs: both methods submit through
:func:`hilt.review.work.submit`, which on PostgreSQL is hilt's one-statement path
(``pg_fast``/``pg_resolve``) and elsewhere the ORM ``submit_review``. On
PostgreSQL (READ COMMITTED) two workers can read the same free slot; on SQLite every
transaction holds the database write lock (``BEGIN IMMEDIATE``), so both methods are
serialised and the naive claim cannot double-assign there.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from benchmarks.procstat import all_processes, proc_cpu

# Backend "pg" reaches a server on this machine through its Unix socket, as a
# same-host deployment would; "pg-tcp" goes through 127.0.0.1 (docs/review.md compares
# the two). HILT_TEST_POSTGRES_URL, when set, is used for both.
PG_TCP_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SOCKET_DIR = "/var/run/postgresql"


def pg_url(backend: str) -> str:
    if url := os.environ.get("HILT_TEST_POSTGRES_URL"):
        return url
    if backend == "pg" and Path(PG_SOCKET_DIR, ".s.PGSQL.5432").exists():
        return f"postgresql+psycopg://postgres@/test?host={PG_SOCKET_DIR}"
    return PG_TCP_URL


K = 3
ANSWERS = {"verdict": "safe", "refusal": "complies", "helpfulness": 4}


def _naive_claim(session: Any, reviewer_id: str, now: Any) -> str | None:
    from hilt.review.tasks import new_id
    from hilt.store import audit
    from hilt.store.tables.base import UTCDateTime

    row = session.execute(sa.text(
        "SELECT t.id FROM review_tasks t WHERE t.status = 'open' AND t.open_slots > 0 "
        "AND t.pool = 'default' AND NOT EXISTS (SELECT 1 FROM review_assignments a "
        "WHERE a.task_id = t.id AND a.reviewer_id = :rid) "
        "ORDER BY t.priority DESC, t.sla_due_at, t.created_at, t.id LIMIT 1"),
        {"rid": reviewer_id}).first()
    if row is None:
        return None
    session.execute(sa.text("UPDATE review_tasks SET open_slots = open_slots - 1 "
                            "WHERE id = :tid"), {"tid": row[0]})
    session.execute(sa.text(
        "INSERT INTO review_assignments (id, task_id, reviewer_id, status, claimed_at, "
        "lease_expires_at) VALUES (:aid, :tid, :rid, 'active', :now, :exp)").bindparams(
        sa.bindparam("now", type_=UTCDateTime()), sa.bindparam("exp", type_=UTCDateTime())),
        {"aid": new_id("asg"), "tid": row[0], "rid": reviewer_id, "now": now,
         "exp": now + timedelta(minutes=15)})
    audit.append(session, actor=reviewer_id, action="task.claim", entity_type="review_task",
                 entity_id=str(row[0]), payload={})
    return str(row[0])


def _worker(url: str, reviewer_ids: list[str], method: str, start: Any, out: Any) -> None:
    """One process: a thread per reviewer, each with a connection of its own, and the
    audit sealer thread that every `hilt serve` worker process runs."""
    from sqlalchemy import event

    from hilt.review.queue import QueueConfig
    from hilt.store.audit import BackgroundSealer
    from hilt.store.db import make_engine

    n = len(reviewer_ids)
    engine = make_engine(url, pool_size=n + 1, max_overflow=0)  # + the sealer's
    backends: list[int] = []  # this process's PostgreSQL server processes

    @event.listens_for(engine, "connect")
    def _backend_pid(dbapi_conn: Any, _record: Any) -> None:
        if engine.dialect.name == "postgresql":
            backends.append(dbapi_conn.execute("SELECT pg_backend_pid()").fetchone()[0])

    config = QueueConfig(gold_rate=0.0, resume_active=False)
    latencies: list[list[float]] = [[] for _ in reviewer_ids]
    submits: list[list[float]] = [[] for _ in reviewer_ids]  # of a separate submission
    counts: list[tuple[int, int]] = [(0, 0)] * n
    # Open the connections before the clock starts.
    opened = [engine.connect() for _ in range(n)]
    for conn in opened:
        conn.close()

    def run(i: int) -> None:
        counts[i] = _loop(engine, reviewer_ids[i], method, config, latencies[i], submits[i])

    with BackgroundSealer(engine):
        start.wait()
        own0, db0 = time.process_time(), _cpu_s(backends)
        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Read before dispose: a backend's CPU time is gone once its process ends.
        cpu = (time.process_time() - own0, _cpu_s(backends) - db0)
    engine.dispose()
    out.put((sum(c for c, _ in counts), [x for lat in latencies for x in lat],
             sum(e for _, e in counts), cpu, backends, [x for lat in submits for x in lat]))


def _loop(engine: Any, reviewer_id: str, method: str, config: Any, latencies: list[float],
          submits: list[float]) -> tuple[int, int]:
    from hilt.review import work
    from hilt.review.reviews import Submission
    from hilt.store.db import transaction
    from hilt.store.tables.base import utcnow

    if method == "hilt-next":
        return _loop_next(engine, reviewer_id, config, latencies), 0
    cycles = conflicts = 0
    while True:
        t0 = time.perf_counter()
        try:
            if method == "hilt":  # what the HTTP API and the CLI call
                claim = work.next_task(engine, reviewer_id, config=config)
                task_id = claim.claim.task_id if claim else None
            else:
                with transaction(engine) as s:
                    task_id = _naive_claim(s, reviewer_id, utcnow())
        except sa.exc.DBAPIError:  # e.g. a deadlock the naive claim walked into
            conflicts += 1
            continue
        latencies.append(time.perf_counter() - t0)
        if task_id is None:
            break
        t0 = time.perf_counter()
        # Both methods submit the same way, so the comparison measures the claim alone.
        work.submit(engine, task_id, reviewer_id, Submission(ANSWERS))
        submits.append(time.perf_counter() - t0)
        cycles += 1
    return cycles, conflicts


def _loop_next(engine: Any, reviewer_id: str, config: Any, latencies: list[float]) -> int:
    """A reviewer who submits with "and give me the next one" (POST .../submit?next=true):
    the first claim alone, then one call per cycle. Its latency is recorded as the claim's:
    it is the wait between one task and the next."""
    from hilt.review import work
    from hilt.review.reviews import Submission

    cycles = 0
    t0 = time.perf_counter()
    found = work.next_task(engine, reviewer_id, config=config)
    latencies.append(time.perf_counter() - t0)
    while found is not None:
        t0 = time.perf_counter()
        _, found = work.submit_and_next(engine, found.claim.task_id, reviewer_id,
                                        Submission(ANSWERS), config=config)
        latencies.append(time.perf_counter() - t0)
        cycles += 1
    return cycles


def _prepare(url: str, n_tasks: int, workers: int) -> None:
    from hilt.access import add_reviewer
    from hilt.review.rubric_spec import RubricSpec
    from hilt.review.rubrics import publish_rubric
    from hilt.review.tasks import insert_tasks, task_row
    from hilt.store.db import make_engine, migrate, transaction
    from hilt.store.tables.base import utcnow
    from hilt.store.tables.core import EventRow, ReviewerRow

    engine = make_engine(url)
    migrate(engine)
    spec = RubricSpec.model_validate({
        "id": "harm", "title": "harm", "questions": [
            {"id": "verdict", "kind": "single_choice", "prompt": "?",
             "options": ["safe", "harmful"]},
            {"id": "refusal", "kind": "single_choice", "prompt": "?",
             "options": ["complies", "full_refusal"]},
            {"id": "helpfulness", "kind": "scale", "prompt": "?", "min": 1, "max": 5}]})
    now = utcnow()
    with transaction(engine) as s:
        publish_rubric(s, spec, actor="bench")
        for w in range(workers):
            add_reviewer(s, reviewer_id=f"w{w:02d}", actor="bench")
        s.flush()
        s.execute(sa.update(ReviewerRow).values(status="calibrated"))
        s.execute(sa.insert(EventRow), [{
            "id": f"ev{i}", "content_hash": "0" * 64, "created_at": now, "ingested_at": now,
            "consent_scopes": ",", "payload": {"interaction": {"prompt": f"p{i}"},
                                               "responses": [{"text": "r"}]}}
            for i in range(n_tasks)])
        rows = [task_row(event_id=f"ev{i}", pool="default", severity=2, rubric_id="harm",
                         rubric_version=1, overlap_k=K, now=now) for i in range(n_tasks)]
        insert_tasks(s, rows, actor="bench", action="task.create", payload={})
    engine.dispose()


def _read_back(url: str) -> tuple[int, str]:
    """Leases beyond k, and the audit chain's state after the run."""
    from hilt.store import audit
    from hilt.store.db import make_engine, transaction

    engine = make_engine(url)
    with engine.connect() as conn:
        excess = conn.execute(sa.text(
            "SELECT COALESCE(SUM(n - k), 0) FROM (SELECT t.id, t.overlap_k AS k, "
            "COUNT(a.id) AS n FROM review_tasks t JOIN review_assignments a "
            "ON a.task_id = t.id GROUP BY t.id, t.overlap_k) x WHERE n > k")).scalar()
        # Every claim and every submission has exactly one entry in the chain.
        matched = conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM audit_log WHERE action = 'task.claim') = "
            "(SELECT count(*) FROM review_assignments) AND "
            "(SELECT count(*) FROM audit_log WHERE action = 'review.submit') = "
            "(SELECT count(*) FROM reviews)")).scalar()
    with transaction(engine) as s:
        chain = audit.verify(s)
    engine.dispose()
    state = f"{'ok' if chain.ok and matched else 'BAD'} {chain.entries}" + (
        f"+{chain.pending}p" if chain.pending else "")
    return int(excess or 0), state


def _database(backend: str, tmp: Path) -> tuple[str, Any]:
    """A fresh empty database; returns its URL and a clean-up function."""
    if backend == "sqlite":
        path = tmp / f"queue-{uuid.uuid4().hex[:8]}.db"

        def remove() -> None:
            for p in tmp.glob(path.name + "*"):
                p.unlink(missing_ok=True)

        return f"sqlite:///{path}", remove
    schema = f"bench_queue_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url(backend))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

    url = sa.engine.make_url(pg_url(backend))
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by these processes (0 for ended ones)."""
    return sum(found.cpu_s for found in map(proc_cpu, pids) if found is not None)


def _postgres_pids(backend: str) -> list[int]:
    """This machine's PostgreSQL processes (none for SQLite)."""
    if backend == "sqlite":
        return []
    return [pid for pid, found in all_processes().items() if found.name == "postgres"]


def run_one(backend: str, method: str, workers: int, n_tasks: int, tmp: Path,
            processes: int = 0) -> dict[str, Any]:
    """``processes``: how many processes the workers are spread over as threads (0: a
    process per worker)."""
    url, cleanup = _database(backend, tmp)
    try:
        _prepare(url, n_tasks, workers)
        # Import everything a cycle touches before forking, so that no worker spends the
        # measured time importing (the aggregator's modules load on a task's k-th review).
        import hilt.quality.aggregation_store  # noqa: F401
        import hilt.quality.store  # noqa: F401
        import hilt.review.pg_resolve  # noqa: F401
        import hilt.review.reviews  # noqa: F401
        import hilt.review.work  # noqa: F401

        # As every `hilt serve` worker does at start-up (hilt.api.asgi): long-lived
        # start-up objects leave the garbage collector's full scans.
        gc.collect()
        gc.freeze()
        ctx = mp.get_context("fork")
        n_procs = min(workers, processes or workers)
        reviewers = [f"w{w:02d}" for w in range(workers)]
        start, out = ctx.Barrier(n_procs + 1), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(url, reviewers[p::n_procs], method,
                                                   start, out))
                 for p in range(n_procs)]
        for p in procs:
            p.start()
        start.wait()
        t0, before = time.perf_counter(), _postgres_pids(backend)
        cpu_before = {pid: _cpu_s([pid]) for pid in before}
        results = [out.get(timeout=900) for _ in procs]
        wall = time.perf_counter() - t0
        # PostgreSQL's other processes (WAL writer, checkpointer, autovacuum); each worker
        # counted its own backends.
        mine = {pid for r in results for pid in r[4]}
        db_cpu = sum(_cpu_s([pid]) - cpu_before.get(pid, 0.0)
                     for pid in _postgres_pids(backend) if pid not in mine)
        for p in procs:
            p.join()
        cycles = sum(r[0] for r in results)
        lat = np.array([x for r in results for x in r[1]]) * 1000
        sub = np.array([x for r in results for x in r[5]]) * 1000
        double, chain = _read_back(url)
        return {"backend": backend, "method": method, "workers": workers,
                "processes": n_procs, "cycles": cycles,
                "cycles_per_s": cycles / wall,
                # leases beyond k are wasted work: cycles that count toward labels
                "within_k_per_s": (cycles - double) / wall,
                "claim_p50_ms": float(np.percentile(lat, 50)),
                "claim_p99_ms": float(np.percentile(lat, 99)),
                "submit_p99_ms": float(np.percentile(sub, 99)) if len(sub) else None,
                "double": double, "errors": sum(r[2] for r in results), "chain": chain,
                "cpu_ms_per_cycle": 1000 * (sum(sum(r[3]) for r in results) + db_cpu)
                / max(cycles, 1),
                "cpu_split_ms": (1000 * sum(r[3][0] for r in results) / max(cycles, 1),
                                 1000 * (sum(r[3][1] for r in results) + db_cpu)
                                 / max(cycles, 1))}
    finally:
        cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run (300 tasks)")
    parser.add_argument("--tasks", type=int, default=None)
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--backends", default="pg,sqlite",
                        help="pg (Unix socket when the server is local), pg-tcp, sqlite")
    parser.add_argument("--methods", default="hilt,hilt-next,naive",
                        help="hilt (claim, then submit), hilt-next (submit and claim the "
                        "next task in one call), naive (the baseline)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="processes the workers are spread over (0: one per worker)")
    args = parser.parse_args()
    n_tasks = args.tasks or (300 if args.quick else 2000)
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    print(f"{n_tasks} tasks x k={K}; each cycle = claim + submit (2 requests; hilt-next: "
          f"1, its latency reported as the claim's); CPU cores: {os.cpu_count()}")
    header = (f"{'backend':8} {'method':9} {'workers':>7} {'procs':>5} {'cycles':>7} "
              f"{'cycles/s':>9} {'within k/s':>10} "
              f"{'claim p50 ms':>12} {'claim p99 ms':>12} {'submit p99':>10} "
              f"{'double':>6} {'errors':>6} "
              f"{'audit chain':>12} {'CPU ms/cycle':>12}  (workers / db)")
    print(header)
    print("-" * len(header))
    for backend in args.backends.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            for method in args.methods.split(","):
                r = run_one(backend, method, workers, n_tasks, tmp,
                            processes=args.processes)
                submit_p99 = ("-" if r["submit_p99_ms"] is None
                              else f"{r['submit_p99_ms']:.1f}")
                print(f"{r['backend']:8} {r['method']:9} {r['workers']:>7} {r['processes']:>5} "
                      f"{r['cycles']:>7} "
                      f"{r['cycles_per_s']:>9.0f} {r['within_k_per_s']:>10.0f} "
                      f"{r['claim_p50_ms']:>12.1f} "
                      f"{r['claim_p99_ms']:>12.1f} {submit_p99:>10} "
                      f"{r['double']:>6} {r['errors']:>6} "
                      f"{r['chain']:>12} {r['cpu_ms_per_cycle']:>12.2f}  "
                      f"({r['cpu_split_ms'][0]:.2f} / {r['cpu_split_ms'][1]:.2f})",
                      flush=True)


if __name__ == "__main__":
    main()
