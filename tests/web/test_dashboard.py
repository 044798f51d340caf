"""The lead dashboard's reviewer table is the CLI's (hilt quality reviewers)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.quality.reviewer_store import reviewer_quality_report, set_reviewer_status
from hilt.store.db import transaction
from hilt.web.dashboard import calibration


def test_a_manual_status_change_shows_on_the_dashboard(engine: Engine) -> None:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="eli", role="reviewer")
        add_reviewer(s, reviewer_id="lou", role="lead")
    with transaction(engine) as s:
        set_reviewer_status(s, "eli", "suspended", actor="lou", reason="spam answers")
    with transaction(engine) as s:
        page = {r["reviewer"]: r for r in calibration(s)}
        cli = {r["reviewer"]: r for r in reviewer_quality_report(s)}
    assert set(page) == {"eli"}  # a lead with no answers is no reviewer row
    assert page["eli"]["status"] == cli["eli"]["status"] == "suspended"
    assert (page["eli"]["ci_low"], page["eli"]["ci_high"]) == (
        cli["eli"]["gold_ci_low"], cli["eli"]["gold_ci_high"])
