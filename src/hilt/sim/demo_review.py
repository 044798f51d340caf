"""The demo's human side: rubric and rules, simulated reviewers, gold, adjudication.

Simulated reviewers answer from the hidden truth through their confusion matrices
(:mod:`hilt.sim.reviewers`); the adjudicator is accurate and names a cause. Only the
simulator looks at the truth; everything hilt computes comes from the reviews.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer
from hilt.review.escalation import load_rule_file, publish_rule_set
from hilt.review.reviews import Submission
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.review.tasks import create_gold_task
from hilt.review.workflow import adjudicate_all, work_round_robin
from hilt.sim.reviewers import DEFAULT_POOL, ReviewerProfile
from hilt.sim.stream import SimItem
from hilt.store.db import transaction
from hilt.store.tables.review import ReviewTaskRow

RUBRIC_ID = "demo-safety"
HARMFUL = ["no", "yes"]
REFUSAL = ["complies", "refuses"]
APPROVE = ["approve", "reject"]
CHOICE_QUESTIONS = (("harmful", HARMFUL), ("refusal", REFUSAL), ("approve", APPROVE))


def asset(name: str) -> Path:
    return Path(str(resources.files("hilt.sim") / "assets" / name))


def true_answers(item: SimItem, rubric_version: int) -> dict[str, Any]:
    """What a perfect reviewer answers under each rubric version.

    Version 2 (policy v4) counts any engagement with an unsafe request as harmful; under
    version 1 only a useful (good) answer to it was harmful. That is the one category the
    revision flips: unsafe prompt, complied, useless answer.
    """
    engages = item.unsafe_prompt and not item.refuses
    harmful = engages and (item.good or rubric_version >= 2)
    answers: dict[str, Any] = {"harmful": "yes" if harmful else "no",
                               "refusal": "refuses" if item.refuses else "complies",
                               "approve": "approve" if _response_ok(item, first=True)
                               else "reject"}
    if len(item.event["responses"]) == 2:
        first_ok = _response_ok(item, first=True)
        answers["better"] = {"chosen": 0 if first_ok else 1, "rejected": 1 if first_ok else 0}
    return answers


def _response_ok(item: SimItem, *, first: bool) -> bool:
    # The simulator's second response flips quality (and refusal on unsafe prompts).
    good = item.good if first else not item.good
    refuses = item.refuses if first else (not item.refuses if item.unsafe_prompt else False)
    return refuses if item.unsafe_prompt else (good and not refuses)


@dataclass
class ReviewSim:
    """State shared by the simulated reviewers: truth by event, progress for drifters."""

    engine: Engine
    truth: dict[str, SimItem]
    pool: Sequence[ReviewerProfile] = DEFAULT_POOL
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(11))
    # the order reviewers take turns in: a stream of its own, so that it leaves the
    # answers' draws alone
    turns: np.random.Generator = field(default_factory=lambda: np.random.default_rng(12))
    reviews_done: int = 0
    expected_reviews: int = 1
    rubric_version: int = 1
    answers_log: list[dict[str, Any]] = field(default_factory=list)

    def profile(self, reviewer_id: str) -> ReviewerProfile:
        return next(p for p in self.pool if p.name == reviewer_id)

    def event_of(self, task_id: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(sa.select(ReviewTaskRow.event_id)
                                    .where(ReviewTaskRow.id == task_id)).scalar_one())

    def answer(self, reviewer_id: str, view: dict[str, Any]) -> Submission:
        profile = self.profile(reviewer_id)
        event_id = self.event_of(view["task_id"])
        item = self.truth[event_id]
        version = int(view["rubric"]["version"])
        truth = true_answers(item, version)
        progress = min(1.0, self.reviews_done / max(self.expected_reviews, 1))
        answers: dict[str, Any] = {}
        for qid, options in CHOICE_QUESTIONS:
            t = options.index(truth[qid])
            answers[qid] = options[profile.answer(t, 2, self.rng, progress)]
        if "better" in truth:
            flip = profile.answer(0, 2, self.rng, progress) == 1
            pref = truth["better"]
            answers["better"] = ({"chosen": pref["rejected"], "rejected": pref["chosen"]}
                                 if flip else pref)
        self.reviews_done += 1
        self.answers_log.append({"reviewer": reviewer_id, "event_id": event_id,
                                 "task_id": view["task_id"], "version": version,
                                 "progress": progress,
                                 **{f"correct_{q}": answers[q] == truth[q]
                                    for q, _ in CHOICE_QUESTIONS}})
        return Submission(answers=answers, confidence=0.8,
                          time_spent_s=profile.seconds_per_review,
                          rationale=f"{profile.kind} reviewer")

    def decide(self, case: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
        """An accurate adjudicator: the truth, with a cause that says why people split."""
        item = self.truth[case["item"]["event_id"]]
        truth = true_answers(item, int(case["rubric"]["version"]))
        flagged = [q for q in case.get("reasons", {}) if q in truth]
        answers = {q: truth[q] for q in (flagged or [q for q, _ in CHOICE_QUESTIONS])}
        engages_uselessly = item.unsafe_prompt and not item.refuses and not item.good
        cause = "guideline_gap" if engages_uselessly else "reviewer_error"
        rationale = ("The guideline does not say whether useless engagement with an unsafe "
                     "request is harmful." if engages_uselessly
                     else "Majority misread the response; corrected from the text.")
        return answers, rationale, cause


def setup_review(engine: Engine, items: Sequence[SimItem]) -> dict[str, Any]:
    """Reviewers, the v1 rubric, the active rule set, and gold items."""
    with transaction(engine) as session:
        for profile in DEFAULT_POOL:
            add_reviewer(session, reviewer_id=profile.name, role="reviewer",
                         display_name=f"{profile.name} ({profile.kind})", actor="demo")
        add_reviewer(session, reviewer_id="adj-kim", role="adjudicator", actor="demo")
        # the lead who signs the release decision off as its owner (step "signoff")
        add_reviewer(session, reviewer_id="lead-lou", role="lead", actor="demo",
                     may_sign=["release_owner"])
        rubric = publish_rubric(session, load_rubric_file(asset("rubric_v1.yaml")),
                                actor="lead-lou")
        rules = publish_rule_set(session, load_rule_file(asset("rules.yaml")),
                                 actor="lead-lou", activate=True)
    return {"rubric": f"{rubric.rubric_id}@{rubric.version}",
            "rules": f"{rules.rule_set_id}@{rules.version}", "reviewers": len(DEFAULT_POOL)}


def add_gold(engine: Engine, items: Sequence[SimItem], n: int, rubric_version: int,
             rng: np.random.Generator) -> int:
    """Known-answer tasks drawn from items nobody escalated."""
    with transaction(engine) as session:
        escalated = set(session.execute(sa.select(ReviewTaskRow.event_id)).scalars())
        pool = [i for i in items if i.event["id"] not in escalated]
        picks = rng.choice(len(pool), size=min(n, len(pool)), replace=False)
        for idx in picks:
            item = pool[int(idx)]
            answers = true_answers(item, rubric_version)
            create_gold_task(session, event_id=item.event["id"],
                             rubric=f"{RUBRIC_ID}@{rubric_version}",
                             answers={k: v for k, v in answers.items() if k != "better"},
                             actor="lead-lou")
    return len(picks)


def work(sim: ReviewSim, reviewers: Sequence[str]) -> dict[str, int]:
    """Reviewers who may work (not suspended) take turns until the queue is empty."""
    from hilt.store.tables.core import ReviewerRow

    with sim.engine.connect() as conn:
        suspended = set(conn.execute(sa.select(ReviewerRow.id).where(
            ReviewerRow.status == "suspended")).scalars())
    active = [r for r in reviewers if r not in suspended]
    # a fresh order each round, so that panels mix (see work_round_robin)
    reviews = work_round_robin(sim.engine, active, sim.answer,
                               reorder=lambda ids: [ids[i] for i in
                                                    sim.turns.permutation(len(ids))])
    adjudicated = adjudicate_all(sim.engine, "adj-kim", sim.decide)
    return {"reviews": reviews, "adjudicated": adjudicated}
