"""Store-side helpers of the demo: statuses, task counts, the rubric revision, drift."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow
from hilt.store.tables.review import FinalLabelRow, ReviewTaskRow


def update_statuses(engine: Engine) -> dict[str, str]:
    """What the scheduler does between review sessions: refit the Dawid–Skene models,
    refresh model-made labels, and run the calibration status machine; returns the
    reviewers' statuses."""
    from hilt.quality.store import refresh_all

    with transaction(engine) as session:
        refresh_all(session, actor="demo")
        rows = session.execute(sa.select(ReviewerRow.id, ReviewerRow.status)
                               .where(ReviewerRow.role == "reviewer")).all()
    return dict(sorted((str(r), str(s)) for r, s in rows))


def task_counts(engine: Engine) -> dict[str, Any]:
    with transaction(engine) as session:
        by_status = dict(session.execute(sa.select(ReviewTaskRow.status, sa.func.count())
                                         .group_by(ReviewTaskRow.status)).all())
        provenance = dict(session.execute(
            sa.select(FinalLabelRow.provenance, sa.func.count())
            .group_by(FinalLabelRow.provenance)).all())
    return {"tasks_by_status": by_status, "final_labels_by_provenance": provenance}


def revise_rubric(engine: Engine) -> dict[str, Any]:
    """Publish version 2, pin the rules to it, and queue a bridge set for re-review."""
    from hilt.quality.drift.bridge import create_bridge
    from hilt.quality.drift.transition import BridgeSettings
    from hilt.review.escalation import load_rule_file, publish_rule_set
    from hilt.review.rubrics import load_rubric_file, publish_rubric
    from hilt.sim.demo_review import RUBRIC_ID, asset

    with transaction(engine) as session:
        rubric = publish_rubric(session, load_rubric_file(asset("rubric_v2.yaml")),
                                actor="lead-lou")
        rules = load_rule_file(asset("rules.yaml"))
        rules = rules.model_copy(update={"changelog": "pin the rubric's version 2"})
        ruleset = publish_rule_set(session, rules, actor="lead-lou", activate=True)
        # The lead wants to hear of a change as small as 5% of a label's items.
        bridge = create_bridge(session, RUBRIC_ID, rubric.version - 1, rubric.version,
                               actor="lead-lou", question_id="harmful", per_stratum=100,
                               seed=5, settings=BridgeSettings(change_threshold=0.05))
    return {"rubric": f"{rubric.rubric_id}@{rubric.version}",
            "rules": f"{ruleset.rule_set_id}@{ruleset.version}",
            "bridge_id": bridge["bridge_id"], "bridge_tasks": bridge["tasks"],
            "bridge_strata": bridge["strata"]}


def drift_readout(engine: Engine, now: datetime) -> dict[str, Any]:
    """The bridge's transition matrix and verdict, and the monitors' alerts as of
    ``now`` (the end of the simulated period)."""
    from hilt.quality.drift.bridge import bridge_compatibility
    from hilt.quality.drift.runner import list_alerts, run_monitors
    from hilt.sim.demo_review import RUBRIC_ID

    with transaction(engine) as session:
        compat = bridge_compatibility(session, RUBRIC_ID, 1, 2)
        run_monitors(session, now, actor="demo")
        alerts = list_alerts(session, limit=500)
    by_monitor = Counter(str(a.get("monitor")) for a in alerts)
    question = compat.questions.get("harmful", {})
    return {"bridge": {"verdict": compat.status, "mixable": compat.mixable,
                       "reason": compat.reason, "harmful": question},
            "compatibility": compat.as_dict(), "alerts_total": len(alerts),
            "alerts_by_monitor": dict(by_monitor), "alerts": alerts[:50]}
