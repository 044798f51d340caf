"""A stored aggregation model whose row was edited by hand (or written by an older
version) with a non-finite, missing or non-numeric parameter: every path that reads it
answers with an error naming the model and the field (409 over HTTP and on the page,
exit 2 on the CLI), never a traceback or a reply holding NaN; a refit replaces it. A fit
that comes out non-finite is not stored."""

from __future__ import annotations

import html
import json
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import add_reviewer, create_token
from hilt.api.app import create_app
from hilt.events.ingest import ingest_events
from hilt.quality import aggregation_store
from hilt.quality.dawid_skene import DawidSkene
from hilt.quality.store import (
    fit_question_models,
    latest_models,
    refresh_labels,
    reviewer_quality_report,
    task_aggregator,
)
from hilt.quality.stored_model import StoredModelError, check_stored_model
from hilt.review.queue import QueueConfig
from hilt.review.reviews import Submission
from hilt.review.tasks import insert_tasks, task_row
from hilt.review.workflow import work_queue, work_round_robin
from hilt.store.db import transaction
from hilt.store.tables.quality import AggregationModelRow
from hilt.store.tables.review import ReviewRow, ReviewTaskRow
from tests.ops.climain import run_main
from tests.web.asgi import BASE, sign_in

from .helpers import POOL, T0, setup_operation

SMALL_POOL = tuple(p for p in POOL if p.name in ("rev-ada", "rev-ben", "rev-fox"))
MARK = "__edited__"
RAW = "raw"  # the literal is the column's value itself (not JSON)

# (column, path inside its JSON, literal written there, field the error names).
# PostgreSQL's JSONB has no NaN or Infinity: there a literal too large for a float
# (1e400) stands for infinity, and NaN cannot be stored at all; nor can its integer
# columns hold text.
CASES: dict[str, tuple[str, Any, str | None, str]] = {
    "nan_confusion": ("confusion", (0, 1, 2), "NaN", "confusion.0.1.2"),
    "inf_prior": ("priors", (1,), "1e400", "priors.1"),
    "negative_inf_expected": ("reviewer_expected_correct", (2,), "-1e400",
                              "reviewer_expected_correct.2"),
    "text_count": ("reviewer_answers", (0,), '"many"', "reviewer_answers.0"),
    "text_setting": ("config", ("min_confidence",), '"high"', "config.min_confidence"),
    "inf_setting": ("config", ("tol",), "1e400", "config.tol"),
    "missing_priors": ("priors", (), "null", "priors"),
    "missing_reviewer": ("reviewer_answers", None, None, "reviewer_answers"),
    "text_versions": ("rubric_versions", (), '"1"', "rubric_versions"),
    "text_n_items": ("n_items", RAW, "many", "n_items"),
}


def _unstorable_on(engine: Engine, case: str) -> bool:
    _, path, literal, _ = CASES[case]
    return engine.dialect.name == "postgresql" and (literal == "NaN" or path == RAW)


@pytest.fixture
def fitted(engine: Engine) -> Iterator[str]:
    """A small operation with one fitted model; yields its id. Parsed models are
    cached by id (stored fits never change), so the cache starts and ends empty."""
    aggregation_store._MODELS.clear()
    op = setup_operation(engine, n_tasks=8, n_gold=3, seed=2, pool=SMALL_POOL)
    random.seed(0)
    work_round_robin(engine, [p.name for p in SMALL_POOL], op.answer,
                     config=QueueConfig(gold_rate=0.5))
    with transaction(engine) as s:
        (model,) = [m.model_id for _, m in fit_question_models(s, "verdicts")]
    aggregation_store._MODELS.clear()
    yield model
    aggregation_store._MODELS.clear()


def _edit(engine: Engine, model_id: str, case: str) -> None:
    """Write the case's literal into the model's row as raw text, as a hand edit would:
    at ``path`` inside the JSON column, over the whole column for ``()``, dropping the
    list's last entry for ``None``."""
    column, path, literal, _ = CASES[case]
    if path == RAW:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE quality_aggregation_models SET {column} = :v "
                                 "WHERE id = :id"), {"v": literal, "id": model_id})
        return
    with engine.connect() as conn:
        value = conn.execute(sa.select(getattr(AggregationModelRow, column))
                             .where(AggregationModelRow.id == model_id)).scalar_one()
    if path is None:
        text = json.dumps(value[:-1])
    elif not path:
        text = literal or "null"
    else:
        target = value
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = MARK
        text = json.dumps(value).replace(json.dumps(MARK), literal or "null")
    cast = "CAST(:v AS jsonb)" if engine.dialect.name == "postgresql" else ":v"
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE quality_aggregation_models SET {column} = {cast} "
                             "WHERE id = :id"), {"v": text, "id": model_id})


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"the reply holds {constant}, which is not JSON")
    return json.loads(text, parse_constant=refuse)


def _names(message: str, model_id: str, field: str) -> bool:
    return model_id in message and f"field '{field}'" in message


def _lead(engine: Engine) -> str:
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="lead1", role="lead")
        return create_token(s, role="lead", reviewer_id="lead1")[1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_edited_stored_model_is_named_by_every_reader(
        engine: Engine, db_url: str, fitted: str, case: str) -> None:
    if _unstorable_on(engine, case):
        pytest.skip("PostgreSQL cannot store this edit")
    field = CASES[case][3]
    _edit(engine, fitted, case)
    token = _lead(engine)

    # The library readers: the model listing, the reviewer report and the workflow's
    # aggregator.
    for read in (lambda s: latest_models(s, "verdicts"), reviewer_quality_report,
                 lambda s: task_aggregator(s, "verdicts", 1)):
        with transaction(engine) as s, pytest.raises(StoredModelError) as raised:
            read(s)
        assert _names(str(raised.value), fitted, field), raised.value

    # HTTP: both read routes answer 409 in strict JSON, naming model and field; the
    # lead's page still serves its other sections, its calibration section naming both.
    with TestClient(create_app(engine), base_url=BASE) as http:
        bearer = {"Authorization": f"Bearer {token}"}
        for route in ("/v1/quality/models", "/v1/quality/reviewers"):
            res = http.get(route, headers=bearer)
            assert res.status_code == 409, (route, res.status_code, res.text)
            assert _names(_strict_json(res.text)["detail"], fitted, field), res.text
        sign_in(http, token)
        page = http.get("/ui/lead")
        assert page.status_code == 200, page.status_code
        alert = page.text.split('role="alert">', 1)[1].split("</p>", 1)[0]
        assert _names(html.unescape(alert), fitted, field), alert
        assert "Drift alerts" in page.text and "Queue depth and SLA" in page.text

    # CLI: exit 2 and one line naming the model and the field.
    for args in ([], ["--json"]):
        code, out = run_main("quality", "reviewers", *args, "--db", db_url)
        assert code == 2 and out.startswith("error: ") and out.count("\n") == 1, out
        assert _names(out, fitted, field), out

    # A refit is not blocked by the edited fit, and replaces it for every reader.
    with transaction(engine) as s:
        refresh_labels(s, "verdicts")
    aggregation_store._MODELS.clear()
    with TestClient(create_app(engine), base_url=BASE) as http:
        for route in ("/v1/quality/models", "/v1/quality/reviewers"):
            res = http.get(route, headers={"Authorization": f"Bearer {token}"})
            assert res.status_code == 200, (route, res.text)
            _strict_json(res.text)


@pytest.mark.parametrize("case", ["nan_confusion", "inf_prior"])
def test_a_task_is_not_resolved_with_an_edited_model(engine: Engine, fitted: str,
                                                     case: str) -> None:
    # The k-th review of a task is refused with the model named (it stays unrecorded,
    # to be submitted again after a refit) rather than resolving with NaN posteriors.
    if _unstorable_on(engine, case):
        pytest.skip("PostgreSQL cannot store this edit")
    _edit(engine, fitted, case)
    ingest_events(engine, [{"id": "ev-late", "interaction": {"prompt": "late"},
                            "responses": [{"text": "late"}],
                            "context": {"policy_version": "pol-1", "consent": ["review"]}}],
                  actor="service")
    with transaction(engine) as s:
        insert_tasks(s, [task_row(event_id="ev-late", pool="default", severity=2,
                                  rubric_id="verdicts", rubric_version=1, overlap_k=3,
                                  now=T0)],
                     actor="lead", action="task.create", payload={"rule": "test"})

    def safe(_view: dict[str, Any]) -> Submission:
        return Submission(answers={"verdict": "safe"})

    plain = QueueConfig(gold_rate=0.0)
    first, second, last = (p.name for p in SMALL_POOL)
    for reviewer in (first, second):
        assert work_queue(engine, reviewer, safe, max_tasks=1, config=plain) == 1
    with pytest.raises(StoredModelError) as raised:
        work_queue(engine, last, safe, max_tasks=1, config=plain)
    assert _names(str(raised.value), fitted, CASES[case][3])
    with engine.connect() as conn:
        reviewers = conn.execute(sa.select(ReviewRow.reviewer_id).join(
            ReviewTaskRow, ReviewTaskRow.id == ReviewRow.task_id).where(
            ReviewTaskRow.event_id == "ev-late")).scalars().all()
    assert sorted(reviewers) == sorted([first, second])


def test_a_fit_with_a_non_finite_parameter_is_not_stored(
        engine: Engine, fitted: str, monkeypatch: pytest.MonkeyPatch) -> None:
    class Diverged(DawidSkene):
        def fit(self, *args: Any, **kwargs: Any) -> Diverged:
            super().fit(*args, **kwargs)
            self.priors_ = np.full_like(self.priors_, np.nan)
            return self

    monkeypatch.setattr(aggregation_store, "DawidSkene", Diverged)
    with transaction(engine) as s, pytest.raises(StoredModelError) as raised:
        fit_question_models(s, "verdicts")
    assert "field 'priors.0'" in str(raised.value) and "not stored" in str(raised.value)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(AggregationModelRow.id)).scalars().all()
    assert ids == [fitted]


def _values(**changes: Any) -> dict[str, Any]:
    """A well-formed stored fit of two reviewers over two classes, with ``changes``."""
    values: dict[str, Any] = {
        "id": "qm_1", "rubric_id": "r", "question_id": "q", "rubric_versions": [1],
        "classes": ["a", "b"], "reviewers": ["x", "y"],
        "confusion": [[[0.9, 0.1], [0.2, 0.8]], [[0.7, 0.3], [0.4, 0.6]]],
        "priors": [0.6, 0.4], "reviewer_answers": [10, 4],
        "reviewer_expected_correct": [8.5, 4.0], "n_items": 12, "n_answers": 14,
        "n_gold_items": 0, "n_iter": 7, "config": {"min_confidence": 0.7}}
    return {**values, **changes}


def test_a_well_formed_fit_reads_back_with_default_scoring_settings() -> None:
    fit = check_stored_model(_values(config={"tol": 1e-5}))
    assert fit.confusion.shape == (2, 2, 2) and fit.priors.tolist() == [0.6, 0.4]
    assert fit.reviewer_answers.tolist() == [10, 4]
    assert (fit.min_reviewer_answers, fit.min_confidence) == (20, 0.8)
    assert check_stored_model(_values()).min_confidence == 0.7


@pytest.mark.parametrize(("changes", "field", "reason"), [
    ({"confusion": [[[0.9, 0.1], [0.2, 0.8]]]}, "confusion", "has 1 entries, not 2"),
    ({"confusion": [[[0.9, 0.1], [0.2]], [[0.7, 0.3], [0.4, 0.6]]]}, "confusion.0.1",
     "has 1 entries, not 2"),
    ({"confusion": [[[0.9, 0.1], [0.2, 1.5]], [[0.7, 0.3], [0.4, 0.6]]]},
     "confusion.0.1.1", "must lie in [0, 1]"),
    ({"priors": [True, 0.4]}, "priors.0", "must be a number, not True"),
    ({"reviewer_answers": [10, 4.5]}, "reviewer_answers.1", "must be a whole number"),
    ({"reviewer_answers": [10, -1]}, "reviewer_answers.1", "must be at least 0"),
    ({"reviewer_expected_correct": [8.5, 5.0]}, "reviewer_expected_correct.1",
     "between 0 and the reviewer's 4 answers"),
    ({"reviewers": ["x", "x"]}, "reviewers", "repeats an entry"),
    ({"classes": []}, "classes", "is empty"),
    ({"config": {"cusum": {"k": float("nan")}}}, "config.cusum.k", "finite number"),
    ({"config": ["min_confidence"]}, "config", "must be an object"),
    ({"rubric_versions": [1, "2"]}, "rubric_versions.1", "must be a whole number"),
])
def test_a_malformed_fit_names_the_field(changes: dict[str, Any], field: str,
                                         reason: str) -> None:
    with pytest.raises(StoredModelError) as raised:
        check_stored_model(_values(**changes))
    assert raised.value.field == field and reason in str(raised.value), raised.value
    assert "aggregation model qm_1 (rubric 'r', question 'q')" in str(raised.value)
