"""``hilt demo``: the loop on the embedded default, from a simulated stream.

Each step is a function that takes the run's state and returns a summary; the CLI
prints them as they finish. The database is left in place so ``hilt serve`` can open it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.events.ingest import ingest_file
from hilt.sim.stream import SimConfig, SimItem, simulate_stream
from hilt.store import audit
from hilt.store.db import make_engine, migrate, transaction


@dataclass
class DemoRun:
    workdir: Path
    config: SimConfig
    engine: Engine | None = None
    items: list[SimItem] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'hilt.db'}"


def step_init(run: DemoRun) -> dict[str, Any]:
    if run.workdir.exists():
        shutil.rmtree(run.workdir)
    run.workdir.mkdir(parents=True)
    run.engine = make_engine(run.db_url)
    migrate(run.engine)
    return {"database": run.db_url}


def step_ingest(run: DemoRun) -> dict[str, Any]:
    assert run.engine is not None
    run.items = simulate_stream(run.config)
    path = run.workdir / "events.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for item in run.items:
            fh.write(json.dumps(item.event) + "\n")
    first = ingest_file(run.engine, path, actor="demo")
    again = ingest_file(run.engine, path, actor="demo")
    return {"events": first.received, "new": first.new, "resent_new": again.new,
            "resent_duplicates": again.duplicates, "escalated": first.escalated,
            "unsafe_share_true": round(sum(i.unsafe_prompt for i in run.items)
                                       / len(run.items), 3)}


def step_verify_audit(run: DemoRun) -> dict[str, Any]:
    assert run.engine is not None
    with transaction(run.engine) as session:
        result = audit.verify(session)
    if not result.ok:
        raise RuntimeError(f"audit chain broken: {result.problem}")
    return {"audit_entries": result.entries, "audit_ok": result.ok}


STEPS: list[tuple[str, Callable[[DemoRun], dict[str, Any]]]] = [
    ("init", step_init),
    ("ingest", step_ingest),
    ("audit", step_verify_audit),
]


def run_demo(workdir: Path, config: SimConfig | None = None,
             echo: Callable[[str], None] = print) -> DemoRun:
    run = DemoRun(workdir=workdir, config=config or SimConfig())
    for name, step in STEPS:
        started = time.perf_counter()
        result = step(run)
        result["seconds"] = round(time.perf_counter() - started, 2)
        run.summary[name] = result
        echo(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in result.items()))
    (workdir / "summary.json").write_text(json.dumps(run.summary, indent=2, default=str))
    return run
