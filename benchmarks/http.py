"""Reviewers working through the HTTP API against a real server, on SQLite and PostgreSQL.

    python -m benchmarks.http [--quick] [--db sqlite,postgres] [--clients 1,4,16] [--next]
                              [--repeats 3]

For each database: a fresh, migrated database; a real uvicorn server process on
127.0.0.1 (``hilt.api.asgi:app``, the API with operations installed; 1 worker process
on SQLite, ``--pg-workers`` on PostgreSQL); reviewers as client threads, each looping
``POST /v1/queue/next`` then ``POST /v1/queue/tasks/{id}/submit`` for a fixed time
(with ``--next``: ``.../submit?next=true``, which returns the next task, so one request
per cycle).
Reported: cycles/s, p50/p99 latency of next-task and submit, and overlap violations read
back from the store (a task with more than k reviews; a reviewer twice on one task).
Before the review phases: an HTTP import of 10k events in batches of 1,000, once over
one connection (a batch at a time) and once over two connections at once, and a
streamed export of 10k tasks with their reviews (``GET /v1/exports/reviews.jsonl``);
each import is timed after two untimed warm-up batches per server worker, with request
bodies encoded beforehand. Before each timed phase the database is vacuumed and analysed
(PostgreSQL), so that autovacuum does not work off the set-up's writes during it. The
clients use the standard library's ``http.client`` over keep-alive connections. Clients
and server share this machine's cores, so the numbers are lower bounds for the server;
the CPU columns (Linux /proc) split the CPU time of a phase per cycle between the
server's processes, PostgreSQL's processes (SQLite runs inside the server) and the
client threads: with C cores, C x 1000 / their sum bounds the cycles/s of this machine.
The baseline, measured in the same run on the same database, server settings and
client loop: a naive review queue over HTTP (``benchmarks.naive_http``: FastAPI and
SQLAlchemy, a select-then-update claim without row locks, hilt's own submit call
``hilt.review.work.submit``, so only the claim differs), run after hilt's review phases
unless ``--skip-baseline``. Each server first runs one untimed phase (its worker
processes import modules on first use, e.g. the aggregator on a task's k-th review),
then ``--repeats`` rounds (3) over the client counts; each row is the median round.
Label Studio's numbers are printed as a footnote, quoted from measurements of Label
Studio 1.23.2 on this machine class (not re-measured here). ``--quick`` imports and
exports 2k items; the targets are for 10k.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from benchmarks.procstat import all_processes
from hilt.access import add_reviewer, create_token
from hilt.events.ingest import ingest_events
from hilt.review.rubric_spec import parse_rubric
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import insert_tasks, task_row
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.base import utcnow
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import ReviewRow, ReviewTaskRow

PG_URL = os.environ.get("HILT_BENCH_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
RUBRIC = {"id": "bench", "title": "Bench", "questions": [
    {"id": "verdict", "kind": "single_choice", "prompt": "ok?",
     "options": ["safe", "harmful", "borderline"]}]}
LABEL_STUDIO = {  # quoted (Label Studio 1.23.2, 16 annotators), not re-measured
    "cycles_per_s": "5-10", "p99_next_ms": "1200 (PG) / 13000 (SQLite)",
    "violations": "0 (PG) / 13-18 (SQLite)", "import_per_s": "3-4k", "export_10k_s": "11-22"}


def event(i: int, tag: str) -> dict[str, Any]:
    return {"id": f"{tag}-{i}", "interaction": {"prompt": f"prompt {i} of {tag}"},
            "responses": [{"text": f"response {i}"}],
            "context": {"policy_version": "p1", "consent": ["review"]}}


def seed_tasks(engine: sa.Engine, n: int, tag: str, overlap: int = 2) -> list[str]:
    ingest_events(engine, [event(i, tag) for i in range(n)], actor="bench")
    now = utcnow()
    rows = [task_row(event_id=f"{tag}-{i}", pool="default", severity=2, rubric_id="bench",
                     rubric_version=1, overlap_k=overlap, now=now) for i in range(n)]
    with transaction(engine) as s:
        insert_tasks(s, rows, actor="bench", action="task.create", payload={"rule": "bench"})
    return [str(r["id"]) for r in rows]


def settle(engine: sa.Engine) -> None:
    """Vacuum and analyse what the set-up just wrote (PostgreSQL), so that a measured
    phase does not share the cores with autovacuum working off the seeding. (No
    CHECKPOINT: the first change of every page after one writes the whole page to the
    WAL, which slowed the phase that followed by a third.)"""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) events, review_tasks, reviews, "
                             "review_assignments, audit_log, audit_pending")


def prepare(url: str, n_reviewers: int) -> tuple[sa.Engine, list[str], str]:
    engine = make_engine(url)
    migrate(engine)
    tokens = []
    with transaction(engine) as s:
        publish_rubric(s, parse_rubric(RUBRIC), actor="bench")
        for i in range(n_reviewers):
            add_reviewer(s, reviewer_id=f"r{i}", role="reviewer")
            s.flush()
            row = s.get(ReviewerRow, f"r{i}")
            assert row is not None
            row.status = "calibrated"
            tokens.append(create_token(s, role="reviewer", reviewer_id=f"r{i}")[1])
        service = create_token(s, role="service")[1]
    return engine, tokens, service


def start_server(url: str, port: int, workers: int, log: Path,
                 app: str = "hilt.api.asgi:app") -> subprocess.Popen[bytes]:
    env = {**os.environ, "HILT_DATABASE_URL": url, "HILT_LOG_LEVEL": "WARNING"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--no-access-log",
             "--log-level", "warning"], env=env, stdout=fh, stderr=subprocess.STDOUT,
            cwd=REPO)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start; see {log}")


class _Client:
    """A keep-alive HTTP/1.1 connection from the standard library: the load generator
    shares the machine's cores with the server, so it should cost as little as possible
    (httpx costs several times more CPU per request)."""

    def __init__(self, base: str, token: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.headers = {"Authorization": f"Bearer {token}",
                        "Content-Type": "application/json"}

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        self.conn.request("POST", path, body=json.dumps(body or {}), headers=self.headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None

    def close(self) -> None:
        self.conn.close()


def reviewer_loop(base: str, token: str, until: float, out: dict[str, list[float]],
                  counts: dict[str, int], lock: threading.Lock, and_next: bool = False,
                  tolerate: bool = False) -> None:
    """``and_next``: submit with ``?next=true`` and work on the task it returns (a
    request for the next task only when there is none in hand). ``tolerate`` (the naive
    baseline): a server error is counted in ``failed`` and the reviewer goes on."""
    nexts, submits, cycles, retries, failed = [], [], 0, 0, 0
    client = _Client(base, token)
    got: Any = None
    query = "?next=true" if and_next else ""
    try:
        while time.monotonic() < until:
            if got is None:
                t0 = time.perf_counter()
                status, got = client.post("/v1/queue/next")
                nexts.append(time.perf_counter() - t0)
                if status >= 500 and tolerate:
                    failed, got = failed + 1, None  # e.g. a deadlock in the unlocked claim
                    continue
                if status != 200:
                    raise RuntimeError(f"next task: HTTP {status}: {got}")
            task, got = got["task"], None
            if task is None:
                break
            for _ in range(200):
                t0 = time.perf_counter()
                status, sent = client.post(f"/v1/queue/tasks/{task['task_id']}/submit{query}",
                                           {"answers": {"verdict": "safe"}})
                submits.append(time.perf_counter() - t0)
                # The API commits before it answers, so a 404 here would mean a claim
                # that was not visible yet: counted in "retry" (expected 0).
                if status != 404:
                    break
                retries += 1
                time.sleep(0.002)
            if status == 409 and "already submitted" in str(sent):
                retries += 1  # next-task resumed a lease whose submit was not committed
                continue
            if status >= 500 and tolerate:
                failed += 1  # the naive server's race: counted, the reviewer goes on
                continue
            if status != 200:
                raise RuntimeError(f"submit: HTTP {status}: {sent}")
            got = sent.get("next")  # with ?next=true: the next task, or {"task": None}
            cycles += 1
    finally:
        client.close()
    with lock:
        out["next"] += nexts
        out["submit"] += submits
        counts["cycles"] += cycles
        counts["retries"] += retries
        counts["failed"] += failed


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def violations(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        over = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT t.id FROM review_tasks t JOIN reviews r "
            "ON r.task_id = t.id GROUP BY t.id, t.overlap_k "
            "HAVING count(*) > t.overlap_k) x")).scalar_one()
        twice = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT task_id, reviewer_id FROM reviews "
            "GROUP BY task_id, reviewer_id HAVING count(*) > 1) x")).scalar_one()
    return int(over), int(twice)


def cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of the server's process tree, of PostgreSQL's processes and of
    this (client) process, for the CPU-per-cycle columns."""
    table = all_processes()
    tree, grew = {server_pid}, True
    while grew:
        extra = {pid for pid, found in table.items() if found.ppid in tree} - tree
        tree |= extra
        grew = bool(extra)
    return {"server": sum(table[p].cpu_s for p in tree if p in table),
            "clients": time.process_time(),
            # A backend that ends leaves its CPU time in the postmaster's reaped time:
            # the difference of two such sums is the CPU spent in between.
            "db": sum(f.cpu_s + f.reaped_s for f in table.values() if f.name == "postgres")}


def run_cycles(engine: sa.Engine, base: str, tokens: list[str], clients: int,
               seconds: float, tasks: int, server_pid: int, and_next: bool = False,
               tolerate: bool = False) -> dict[str, Any]:
    seed_tasks(engine, tasks, f"c{clients}-{uuid.uuid4().hex[:6]}")
    settle(engine)
    over0, twice0 = violations(engine)  # this phase's own, not earlier phases'
    out: dict[str, list[float]] = {"next": [], "submit": []}
    counts = {"cycles": 0, "retries": 0, "failed": 0}
    lock = threading.Lock()
    cpu0 = cpu_split(server_pid)
    started = time.monotonic()
    threads = [threading.Thread(target=reviewer_loop, args=(
        base, tokens[i], started + seconds, out, counts, lock, and_next, tolerate))
        for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    cpu1 = cpu_split(server_pid)
    cycles = max(counts["cycles"], 1)
    over, twice = violations(engine)
    over, twice = over - over0, twice - twice0
    return {"clients": clients, "cycles_per_s": counts["cycles"] / elapsed,
            "failed": counts["failed"],
            "next_p50": percentile_ms(out["next"], 0.5),
            "next_p99": percentile_ms(out["next"], 0.99),
            "submit_p50": percentile_ms(out["submit"], 0.5),
            "submit_p99": percentile_ms(out["submit"], 0.99),
            "over_k": over, "twice": twice, "uncommitted_retries": counts["retries"],
            "cpu_ms": {k: 1000 * (cpu1[k] - cpu0[k]) / cycles for k in cpu0}}


def run_import(base: str, service: str, n: int, batch: int, warmup: int,
               connections: int = 1) -> float:
    """Items/s of an import in batches of ``batch``, sent over ``connections`` keep-alive
    connections at once (each sends every ``connections``-th batch). ``warmup`` batches
    with other ids go first and are not timed (a long-running server is warm; a fresh
    worker process's first request pays for lazy imports and cold caches), and the
    bodies are encoded before the clock starts (the client's JSON encoding is not the
    server's work)."""
    headers = {"Authorization": f"Bearer {service}", "Content-Type": "application/json"}
    tag = "imp-" + uuid.uuid4().hex[:6]

    def body(items: list[dict[str, Any]]) -> bytes:
        return json.dumps({"events": items}).encode()

    warm = [body([event(i, f"warm{w}-{tag}") for i in range(batch)]) for w in range(warmup)]
    bodies = [body([event(i, tag) for i in range(j, min(n, j + batch))])
              for j in range(0, n, batch)]
    clients = [httpx.Client(base_url=base, headers=headers, timeout=120)
               for _ in range(connections)]
    failures: list[BaseException] = []

    def send(client: httpx.Client, share: list[bytes]) -> None:
        try:
            for content in share:
                client.post("/v1/events", content=content).raise_for_status()
        except BaseException as exc:  # reported after the join
            failures.append(exc)

    try:
        for i, content in enumerate(warm):
            clients[i % connections].post("/v1/events", content=content).raise_for_status()
        threads = [threading.Thread(target=send, args=(c, bodies[i::connections]))
                   for i, c in enumerate(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        for c in clients:
            c.close()
    if failures:
        raise failures[0]
    return n / elapsed


def run_export(engine: sa.Engine, base: str, service: str, n: int) -> tuple[float, int]:
    """Seed n resolved tasks with two reviews each, then time the streamed export."""
    ids = seed_tasks(engine, n, "exp-" + uuid.uuid4().hex[:6])
    now = utcnow()
    reviews = [{"id": f"rev-{task}-{j}", "task_id": task, "assignment_id": f"a-{task}-{j}",
                "reviewer_id": f"r{j}", "rubric_id": "bench", "rubric_version": 1,
                "answers": {"verdict": "safe"}, "is_gold": False, "late": False,
                "submitted_at": now} for task in ids for j in range(2)]
    with transaction(engine) as s:
        s.execute(sa.insert(ReviewRow), reviews)
        # Done work: not claimable in the review phases that follow.
        s.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id.in_(ids)).values(
            status="resolved", open_slots=0, reviews_done=2, resolved_at=now))
    settle(engine)
    headers = {"Authorization": f"Bearer {service}"}
    t0 = time.perf_counter()
    lines = 0
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client, \
            client.stream("GET", "/v1/exports/reviews.jsonl") as response:
        response.raise_for_status()
        # Lines counted on the raw bytes: decoding and splitting the text on the client
        # (httpx's iter_lines) would take CPU from the server on a shared machine.
        for chunk in response.iter_bytes():
            lines += chunk.count(b"\n")
    return time.perf_counter() - t0, lines


def database(kind: str, tmp: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", None
    schema = "bench_http_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

    return schema_url(PG_URL, schema), drop


def schema_url(url: str, schema: str) -> str:
    """``url`` with its connections' search_path set to ``schema``, keeping any query
    string the URL already has (appending ``?options=`` would break one)."""
    parsed = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


def warm_clients(clients: list[int], workers: int) -> int:
    """Clients of the untimed warm-up phase: enough that every server worker process
    serves some (each imports its lazily loaded modules on its own)."""
    return max([*clients, 2 * workers])


def median_phase(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeat with the median cycles/s (its latencies and CPU with it), with the
    spread of cycles/s over the repeats and the violations and failures of all of them
    (one bad repeat is a violation of the run)."""
    ordered = sorted(rows, key=lambda r: r["cycles_per_s"])
    row = dict(ordered[(len(ordered) - 1) // 2])
    for key in ("over_k", "twice", "uncommitted_retries", "failed"):
        row[key] = sum(r[key] for r in rows)
    row["repeats"] = len(rows)
    row["cycles_range"] = (ordered[0]["cycles_per_s"], ordered[-1]["cycles_per_s"])
    return row


def timed_phases(phase: Callable[[int], dict[str, Any]], clients: list[int],
                 warm: int, repeats: int) -> list[dict[str, Any]]:
    """One untimed warm-up phase with ``warm`` clients (a fresh server's worker processes
    import modules on first use, e.g. the aggregator on a task's k-th review: seconds
    that would land in whichever phase comes first), then ``repeats`` rounds over the
    client counts, reported as the median per count."""
    phase(warm)
    rounds = [[phase(c) for c in clients] for _ in range(repeats)]
    return [median_phase([r[i] for r in rounds]) for i in range(len(clients))]


def bench_db(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        url, cleanup = database(kind, tmp)
        try:
            workers = 1 if kind == "sqlite" else args.pg_workers
            engine, tokens, service = prepare(url, warm_clients(clients, workers))
            port = 18000 + os.getpid() % 1000 + (0 if kind == "sqlite" else 1)
            server = start_server(url, port, workers, tmp / "server.log")
            base = f"http://127.0.0.1:{port}"
            try:
                # Import and export first, so that the export holds exactly the seeded
                # items (the review phases add tasks of their own).
                settle(engine)
                imported = {c: run_import(base, service, args.items, 1000,
                                          warmup=2 * workers, connections=c)
                            for c in (1, 2)}
                export_s, lines = run_export(engine, base, service, args.items)
                rows = timed_phases(lambda c: run_cycles(
                    engine, base, tokens, c, args.seconds, args.tasks, server.pid,
                    args.next), clients, warm_clients(clients, workers), args.repeats)
            finally:
                server.terminate()
                server.wait(20)
            baseline_rows = []
            if not args.skip_baseline:
                naive = start_server(url, port + 2, workers, tmp / "naive.log",
                                     app="benchmarks.naive_http:app")
                naive_base = f"http://127.0.0.1:{port + 2}"
                try:
                    baseline_rows = timed_phases(lambda c: run_cycles(
                        engine, naive_base, tokens, c, args.seconds, args.tasks, naive.pid,
                        tolerate=True), clients, warm_clients(clients, workers), args.repeats)
                finally:
                    naive.terminate()
                    naive.wait(20)
            engine.dispose()
        finally:
            if cleanup:
                cleanup()
    return {"db": kind, "workers": workers, "cycles": rows, "baseline": baseline_rows,
            "import_per_s": imported, "export_s": export_s, "export_lines": lines}


def _cycle_row(system: str, res: dict[str, Any], row: dict[str, Any]) -> str:
    return (f"{system:9}{res['db']:9}{res['workers']:>8}{row['clients']:>8}"
            f"{row['cycles_per_s']:>10.1f}{row['next_p50']:>9.1f}m{row['next_p99']:>9.1f}m"
            f"{row['submit_p50']:>8.1f}m{row['submit_p99']:>8.1f}m{row['over_k']:>5}"
            f"{row['twice']:>4}{row['uncommitted_retries']:>7}{row['failed']:>7}"
            f"  {row['cpu_ms']['server']:.1f} / {row['cpu_ms']['db']:.1f} / "
            f"{row['cpu_ms']['clients']:.1f}"
            f"  [{row['cycles_range'][0]:.1f}, {row['cycles_range'][1]:.1f}]")


def print_report(results: list[dict[str, Any]], items: int) -> None:
    print("\nReview cycles over HTTP (next task + submit): hilt vs a naive queue server "
          "(benchmarks.naive_http), same run, same database and clients")
    print(f"{'system':9}{'db':9}{'workers':>8}{'clients':>8}{'cycles/s':>10}{'next p50':>10}"
          f"{'next p99':>10}{'sub p50':>9}{'sub p99':>9}{'>k':>5}{'2x':>4}{'retry':>7}"
          f"{'failed':>7}  CPU ms/cycle: server / db / clients  [cycles/s min, max]")
    repeats = results[0]["cycles"][0]["repeats"] if results and results[0]["cycles"] else 1
    print(f"(each server warmed by one untimed phase first; each row the median of {repeats} "
          "repeats by cycles/s, with that repeat's latencies and CPU; >k, 2x, retry and "
          "failed summed over the repeats)")
    for res in results:
        for row in res["cycles"]:
            print(_cycle_row("hilt", res, row))
        for row in res["baseline"]:
            print(_cycle_row("naive", res, row))
    for res in results:
        for ours, theirs in zip(res["cycles"], res["baseline"], strict=False):
            ratio = ours["cycles_per_s"] / max(theirs["cycles_per_s"], 1e-9)
            print(f"  {res['db']}, {ours['clients']} clients: hilt/naive cycles/s "
                  f"{ratio:.2f}x (medians); tasks over k {ours['over_k']} vs "
                  f"{theirs['over_k']}")
    print("  (>k: tasks given more than k reviews; 2x: a reviewer twice on one task; "
          "failed: server errors, e.g. deadlocks of the unlocked claim)")
    print(f"Label Studio 1.23.2 at 16 annotators (quoted, not measured here): "
          f"{LABEL_STUDIO['cycles_per_s']} cycles/s, p99 next {LABEL_STUDIO['p99_next_ms']} "
          f"ms, tasks over k {LABEL_STUDIO['violations']}")
    print(f"\nImport and export over HTTP ({items:,} items)")
    print(f"{'db':9}{'import items/s, 1 conn':>24}{'2 conns':>10}{'export s':>10}"
          f"{'lines':>8}")
    for res in results:
        imp = res["import_per_s"]
        print(f"{res['db']:9}{imp[1]:>24.0f}{imp[2]:>10.0f}{res['export_s']:>10.2f}"
              f"{res['export_lines']:>8}")
    print(f"Label Studio 1.23.2 (quoted, not measured here): import "
          f"{LABEL_STUDIO['import_per_s']} tasks/s, export of 10k tasks "
          f"{LABEL_STUDIO['export_10k_s']} s; the same-run baselines for ingest are in "
          "python -m benchmarks.ingest")
    print("targets: >=200 cycles/s at 16 clients on PostgreSQL, p99 next < 100 ms, zero "
          "violations; import >= 20k items/s; export of 10k items <= 1 s"
          + ("" if items == 10_000 else f" (this run exported {items:,})"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, 2k items")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--pg-workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds over the client counts; the median is reported")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="do not run the naive queue server after hilt's phases")
    parser.add_argument("--next", action="store_true",
                        help="reviewers submit with ?next=true (submit and lease the next "
                        "task in one request; 'sub' is then that request)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.seconds = 3.0 if args.quick else 10.0
    args.tasks = 800 if args.quick else 3000
    args.items = 2000 if args.quick else 10_000
    results = [bench_db(kind, args) for kind in args.db.split(",")]
    print_report(results, args.items)
    means = [r["cycles"][-1]["cycles_per_s"] for r in results]
    print(f"\n(mean of last-phase cycles/s over databases: {statistics.mean(means):.1f})")


if __name__ == "__main__":
    main()
