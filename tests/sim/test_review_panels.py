"""The demo's simulated reviewers share panels with every other reviewer: the order
they take turns in changes each round, so no fixed group labels a share of the tasks
on its own."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import sqlalchemy as sa

from hilt.events.ingest import ingest_events
from hilt.sim.demo_review import ReviewSim, setup_review, work
from hilt.sim.stream import SimConfig, simulate_stream
from hilt.store.db import make_engine, migrate
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import ReviewRow


def test_panels_mix_every_reviewer_with_every_other(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hilt.db'}")
    migrate(engine)
    items = simulate_stream(SimConfig(n_events=150, seed=1))
    setup_review(engine, items)
    escalated = ingest_events(engine, [i.event for i in items], actor="test").escalated
    with engine.begin() as conn:  # past calibration: every reviewer takes open tasks
        conn.execute(sa.update(ReviewerRow).values(status="calibrated"))
    sim = ReviewSim(engine, {i.event["id"]: i for i in items})
    # six reviewers and panels of three, as in the demo once the spammer is suspended
    active = [p.name for p in sim.pool if p.kind != "spammer"]
    assert len(active) == 6
    done = work(sim, active)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ReviewRow.task_id, ReviewRow.reviewer_id)).all()
    assert done["reviews"] == len(rows) == 3 * escalated
    panels: dict[str, set[str]] = defaultdict(set)
    for task_id, reviewer_id in rows:
        panels[task_id].add(reviewer_id)
    met = {pair for panel in panels.values() for pair in itertools.combinations(sorted(panel), 2)}
    assert met == set(itertools.combinations(sorted(active), 2))
    most = Counter(frozenset(panel) for panel in panels.values()).most_common(1)[0][1]
    assert most <= len(panels) / 4
