"""A regression check wired to the store: what ``hilt check`` runs.

:func:`hilt.evals.check.run_check` works on files alone. :func:`check_with_store` adds
what only the database knows: the candidate's training datasets (consent, revocation,
contamination), its registered model version and lineage, a registered reward model,
the decision recorded for later re-checking, and a stratified sample of candidate
outputs sent to human review.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.evals.check import CheckResult, run_check
from hilt.evals.report import write_outputs_atomically


@dataclass(frozen=True)
class StoreRequest:
    """What to read from and write to the store around one check."""

    dataset_versions: list[str] = field(default_factory=list)
    model_version: str | None = None
    rm_version: str | None = None
    record: bool = False
    # Human review of a sample of candidate outputs (0: none).
    review_sample: int = 0
    rubric: str | None = None
    review_question: str = "refusal"
    review_overlap: int = 3
    review_pool: str = "default"

    def needs_store(self) -> bool:
        return bool(self.record or self.dataset_versions or self.model_version
                    or self.rm_version or self.review_sample)


@dataclass(frozen=True)
class StoredCheck:
    result: CheckResult
    review_sent: dict[str, Any] | None = None  # events_new, tasks_created
    review_rubric: str | None = None


def validate_request(request: StoreRequest, *, rm: Path | None) -> None:
    if rm is not None and request.rm_version is not None:
        raise InputError("give --rm or --rm-version, not both", field="--rm")
    if request.review_sample and request.rubric is None:
        raise InputError("--review-sample needs --rubric", field="--rubric")
    if request.rubric is not None and not request.review_sample:
        # a rubric for a sample nobody draws would be ignored without a word
        raise InputError("has no effect without --review-sample N", field="--rubric")


def check_with_store(options: dict[str, Any], request: StoreRequest, *,
                     engine: Engine | None, rm: Path | None = None,
                     actor: str = "cli") -> StoredCheck:
    """Run :func:`run_check` with ``options`` plus the store's facts; record the decision
    and send the review sample when asked. ``engine`` may be ``None`` only when the
    request needs no store."""
    validate_request(request, rm=rm)
    if request.needs_store() and engine is None:
        raise InputError("this check needs the database", field="--db")
    from hilt.evals.files import parse_suite

    # parsed once: the store's contamination check and the run read the same items
    items = parse_suite(options["suite"])
    store_facts = (_read_facts(engine, options, request, items) if request.needs_store()
                   else {})
    reward_model: Any = rm
    if request.rm_version is not None:
        from hilt.evals.reward import load_reward_model

        reward_model = load_reward_model(store_facts["rm_dir"],
                                         version=store_facts["rm_version"])
    review = None
    if request.review_sample:
        review = {"budget": request.review_sample, "rubric": store_facts["rubric"],
                  "question": request.review_question}
    if engine is not None and isinstance(options.get("scorer"), str | Path):
        # with the store at hand the decision names the scorer's registered version
        from hilt.evals.scoring import load_scorer
        from hilt.store.db import transaction

        with transaction(engine) as session:
            options = {**options, "scorer": load_scorer(options["scorer"], session=session)}
    stores = engine is not None and (request.record or review is not None)
    # with a store to write, the outputs follow the commit: a failed store leaves no
    # report folder that names a decision the database does not hold
    result = run_check(**options, items=items,
                       extra_records=store_facts.get("records") or {},
                       lineage=store_facts.get("lineage"),
                       extra_versions=store_facts.get("versions"),
                       reward_model=reward_model, review=review, write=not stores)
    sent = None
    if stores:
        assert engine is not None
        sent = _record(engine, result, request, review, actor)
        write_outputs_atomically(options["out"], result.outputs)
    return StoredCheck(result, sent, review["rubric"] if review else None)


def _read_facts(engine: Engine | None, options: dict[str, Any], request: StoreRequest,
                items: list[Any]
                ) -> dict[str, Any]:
    from hilt.evals.store_facts import read_store_facts
    from hilt.store.db import transaction

    assert engine is not None
    suite_id = options.get("suite_id")
    suite_name = suite_id or Path(options["suite"]).stem
    # the prompts measured are checked for contamination whatever the suite is called,
    # in the forms the registry gives decontamination (a conversation's user turns)
    run_items = [(suite_name, item.id, text) for item in items
                 for text in item.heldout_texts()]
    with transaction(engine) as session:
        return read_store_facts(
            session, suite_ids=[suite_name], registered_suite=suite_id,
            dataset_versions=request.dataset_versions, model_version=request.model_version,
            rm_version=request.rm_version,
            rubric=request.rubric if request.review_sample else None,
            review_question=request.review_question, run_items=run_items,
            suite_items=items)


def _record(engine: Engine, result: CheckResult, request: StoreRequest,
            review: dict[str, Any] | None, actor: str) -> dict[str, Any] | None:
    """The decision and the review sample commit together."""
    from hilt.gate.store import store_decision
    from hilt.store.db import transaction

    with transaction(engine) as session:
        store_decision(session, result.record, actor=actor)
        if review is None:
            return None
        from hilt.evals.review_loop import send_review_sample

        return send_review_sample(session, result.record, result.items,
                                  result.lines["candidate"], actor=actor,
                                  pool=request.review_pool,
                                  overlap_k=request.review_overlap)
