"""The lead dashboard's reviewer table is the CLI's (hilt quality reviewers)."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.quality.reviewer_store import reviewer_quality_report, set_reviewer_status
from hilt.store.db import transaction
from hilt.web.dashboard import _recent_reviews, agreement, calibration


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


def test_agreement_reads_an_unticked_checklist_as_the_empty_selection(
        engine: Engine) -> None:
    """Three reviewers, one of whom ticks an issue on each task while the other two tick
    nothing: the checklist's ratings are all three reviews of every task, as resolution
    counts them, not only the one reviewer's."""
    from tests.quality_store.test_optional_answers_quality import _review_all, _setup

    reviewers = ["a", "b", "c"]
    _setup(engine, reviewers)
    _review_all(engine, [[{"issues": ["facts"]}, {"tone": "warm"}, {}]] * 6, reviewers)
    with transaction(engine) as s:
        rows = {r["question"]: r for r in agreement(s, _recent_reviews(s))}
    assert rows["issues"]["n_answers"] == 18 and rows["issues"]["n_reviewers"] == 3, rows
