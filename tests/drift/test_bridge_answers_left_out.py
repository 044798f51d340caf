"""Bridge re-reviews are left out of every reviewer-level monitor (SQLite and PostgreSQL).

A bridge samples the same number of items per old label, so a reviewer's bridge answers
have a label mix of their own (a third each of three options, where production labels
are mostly 'safe'): counted with the reviewer's production answers, a week of bridge work
becomes a baseline that production answers "shift" away from."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from hilt.events.ingest import ingest_events
from hilt.quality.drift.bridge import create_bridge
from hilt.quality.drift.runner import collect
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_task
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from tests.drift.answering import answer_everything

from . import scenario


def test_bridge_answers_are_no_reviewer_answers_or_ratings(engine: Engine) -> None:
    scenario.base(engine)
    truth = {f"ev{i:05d}": scenario.CHOICES[i % 3] for i in range(24)}
    ingest_events(engine, [scenario.event(i, scenario.T0) for i in range(24)],
                  actor="service")
    with transaction(engine) as s:
        for eid in truth:
            create_task(s, event_id=eid, rubric="simple@1", actor="lead", overlap_k=1)
    assert answer_everything(engine, truth, "r0") == 24
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("v2"), actor="lead")
        create_bridge(s, "simple", 1, 2, actor="lead", per_stratum=6, overlap_k=1, seed=3)
    assert answer_everything(engine, truth, "r1") == 18
    now = utcnow()
    with transaction(engine) as s:
        obs = collect(s, now - timedelta(days=1), now + timedelta(days=1))
    reviewers = {dict(a.group)["reviewer"] for a in obs.reviewer_answers}
    rubrics = {dict(a.group)["rubric"] for a in obs.reviewer_answers}
    # r0's production answers under v1 are there; r1's bridge answers under v2 are not.
    assert reviewers == {"r0"} and rubrics == {"simple@1"}
    assert len(obs.reviewer_answers) == 24
    assert {dict(r.group)["rubric"] for r in obs.ratings} == {"simple@1"}
    assert {dict(label.group)["rubric"] for label in obs.labels} == {"simple@1"}
