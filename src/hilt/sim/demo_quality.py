"""The demo's read-out of label quality: how well hilt recovered the hidden truth.

Compares majority vote and Dawid–Skene labels with the simulator's truth, hilt's
estimated reviewer accuracy (the stored Dawid–Skene models') with each reviewer's true
accuracy, and when a CUSUM on each reviewer's agreement with the final labels flagged the
drifting reviewer.
Every figure carries a Wilson interval.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.quality import CusumConfig, DawidSkene, MajorityVote, first_alarm, wilson_interval
from hilt.quality.answers import Answers
from hilt.sim.demo_review import CHOICE_QUESTIONS, ReviewSim, true_answers
from hilt.store.tables.review import FinalLabelRow, ReviewRow, ReviewTaskRow


def _interval(k: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"value": None, "ci": [None, None], "n": 0}
    lo, hi = wilson_interval(k, n)
    return {"value": round(k / n, 4), "ci": [round(float(lo), 4), round(float(hi), 4)],
            "n": n}


def label_quality(engine: Engine, sim: ReviewSim) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ReviewRow.reviewer_id, ReviewRow.answers, ReviewRow.rubric_version,
                      ReviewTaskRow.event_id, ReviewRow.submitted_at)
            .join(ReviewTaskRow, ReviewTaskRow.id == ReviewRow.task_id)
            .where(ReviewRow.is_gold.is_(False))).all()
        finals = conn.execute(
            sa.select(FinalLabelRow.event_id, FinalLabelRow.rubric_version,
                      FinalLabelRow.question_id, FinalLabelRow.value,
                      FinalLabelRow.provenance)).all()
    out: dict[str, Any] = {"questions": {}}
    for qid, _options in CHOICE_QUESTIONS:
        items, reviewers, labels, truth = [], [], [], {}
        for reviewer, answers, version, event_id, _ in rows:
            if qid not in answers:
                continue
            key = f"{event_id}@{version}"
            items.append(key)
            reviewers.append(reviewer)
            labels.append(str(answers[qid]))
            truth[key] = true_answers(sim.truth[event_id], int(version))[qid]
        if not items:
            continue
        answers_obj = Answers.from_columns(items, reviewers, labels)
        result: dict[str, Any] = {}
        for name, model in (("majority_vote", MajorityVote()), ("dawid_skene", DawidSkene())):
            model.fit(answers_obj)
            ok = sum(str(lbl) == truth[str(it)] for it, lbl in zip(model.items_, model.labels_,
                                                                   strict=True))
            result[name] = _interval(int(ok), len(model.items_))
        final_ok = [str(v) == true_answers(sim.truth[e], int(ver))[qid]
                    for e, ver, q, v, prov in finals if q == qid and prov != "gold"]
        result["final_labels"] = _interval(sum(final_ok), len(final_ok))
        out["questions"][qid] = result
    final_of = {(e, int(ver)): str(v) for e, ver, q, v, prov in finals
                if q == "harmful" and prov != "gold"}
    out["reviewers"] = reviewer_truth(sim, rows, final_of)
    estimates = stored_model_accuracy(engine)
    for name, r in out["reviewers"].items():
        r["dawid_skene_estimate"] = estimates.get(name, _interval(0, 0))
    return out


def stored_model_accuracy(engine: Engine) -> dict[str, dict[str, Any]]:
    """hilt's own estimate of each reviewer's accuracy: the stored Dawid–Skene models'
    expected accuracy, with its Wilson interval, as ``hilt quality reviewers`` shows it."""
    from hilt.quality.reviewer_store import reviewer_quality_report
    from hilt.store.db import transaction

    with transaction(engine) as session:
        rows = reviewer_quality_report(session)
    out = {}
    for r in rows:
        if r["model_accuracy"] is None:
            out[str(r["reviewer"])] = _interval(0, 0)
            continue
        out[str(r["reviewer"])] = {
            "value": round(float(r["model_accuracy"]), 4),
            "ci": [round(float(r["model_ci_low"]), 4), round(float(r["model_ci_high"]), 4)],
            "n": int(r["model_n_answers"])}
    return out


def reviewer_truth(sim: ReviewSim, rows: Any, final_of: dict[tuple[str, int], str]
                   ) -> dict[str, Any]:
    """Per reviewer: true accuracy (the simulator's), observed accuracy against the
    truth, and hilt's own signal: a CUSUM over agreement with the final labels, in the
    order the reviews were submitted, with the run's progress at the first alarm."""
    by_reviewer: dict[str, list[bool]] = defaultdict(list)
    progress: dict[str, list[float]] = defaultdict(list)
    for entry in sim.answers_log:
        by_reviewer[entry["reviewer"]].append(bool(entry["correct_harmful"]))
    agree: dict[str, list[bool]] = defaultdict(list)
    order = sorted(rows, key=lambda r: r[4])
    for i, (reviewer, answers, version, event_id, _at) in enumerate(order):
        final = final_of.get((event_id, int(version)))
        if final is not None and "harmful" in answers:
            agree[reviewer].append(str(answers["harmful"]) == final)
            progress[reviewer].append(i / max(len(order), 1))
    out = {}
    for profile in sim.pool:
        correct = by_reviewer.get(profile.name, [])
        agreement = agree.get(profile.name, [])
        mean_progress = float(np.mean(progress[profile.name])) if agreement else 0.0
        alarm = (first_alarm(np.array(agreement, dtype=bool), CusumConfig())
                 if agreement else None)
        out[profile.name] = {
            "kind": profile.kind,
            "true_accuracy_start": profile.accuracy_at(0.0),
            "true_accuracy_end": profile.accuracy_at(1.0) if profile.kind != "spammer"
            else 0.5,
            "mean_progress": round(mean_progress, 3),
            "observed_accuracy_vs_truth": _interval(sum(correct), len(correct)),
            "agreement_with_final_labels": _interval(sum(agreement), len(agreement)),
            "cusum_alarm_at_review": alarm,
            "cusum_alarm_progress": (round(progress[profile.name][alarm], 3)
                                     if alarm is not None else None),
        }
    return out
