"""Facts a regression check reads from the store before it runs.

A file-only check knows only its files. With a database it can also know: the
registered suite (held-out flag, content hash, who registered it), the candidate's
training lineage (dataset versions named directly or through its registered model
version), a registered reward model, and the rubric a review sample is judged under.
Everything is read in one transaction, before any output is written, and turned into
plain data (card records, lineage facts, versions) for :func:`hilt.evals.check.run_check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hilt.errors import InputError


def check_registered_suite(session: Session, suite_id: str, items: Sequence[Any], *,
                           file: str | None = None, field: str = "--suite-id") -> None:
    """A ``--suite-id NAME@VERSION`` must be registered and hold the file's content, or
    the card would vouch for a suite the run did not measure. ``file`` and ``field``
    say where the id was read when it did not come from the option (a stored record)."""
    from hilt.evals.registry import suite_content_hash
    from hilt.store.tables.gate import EvalSuiteRow

    row = session.get(EvalSuiteRow, suite_id)
    if row is None:
        if "@" in suite_id:
            raise InputError(f"suite {suite_id!r} is not registered (hilt suite list)",
                             file=file, field=field)
        return  # a plain name: the file is the suite
    digest = suite_content_hash(items, prompt_template=row.prompt_template,
                                role_format=row.role_format, language=row.language)
    if digest != row.content_hash:
        raise InputError(f"the suite file is not the content of registered suite {suite_id} "
                         f"(sha256 {digest[:12]}… vs {row.content_hash[:12]}…)",
                         file=file, field=field)


def _rubric_facts(session: Session, rubric: str, question: str) -> dict[str, Any]:
    """The pinned ``id@version`` of the rubric and a check that ``question`` can carry a
    refusal judgment (a single choice whose options all map to comply/refuse/partial)."""
    from hilt.errors import NotFound
    from hilt.evals.scoring import LABEL_TO_JUDGMENT
    from hilt.review.rubrics import get_version, parse_ref, spec_of

    try:
        row = get_version(session, *parse_ref(rubric))
    except NotFound as exc:
        raise InputError(f"rubric {rubric!r} is not published", field="--rubric") from exc
    spec = spec_of(row)
    found = next((q for q in spec.questions if q.id == question), None)
    if found is None:
        raise InputError(f"rubric {row.rubric_id}@{row.version} has no question "
                         f"{question!r}", field="--review-question")
    values = [getattr(o, "value", o) for o in (getattr(found, "options", None) or [])]
    unmapped = [str(v) for v in values if str(v) not in LABEL_TO_JUDGMENT]
    if found.kind != "single_choice" or not values or unmapped:
        raise InputError(f"question {question!r} must be a single choice whose options "
                         f"map to comply/refuse/partial (unmapped: {unmapped})",
                         field="--review-question")
    return {"ref": f"{row.rubric_id}@{row.version}", "question": question,
            "options": [str(v) for v in values]}


def read_store_facts(session: Session, *, suite_ids: Sequence[str],
                     registered_suite: str | None = None,
                     dataset_versions: Sequence[str] = (),
                     model_version: str | None = None, rm_version: str | None = None,
                     rubric: str | None = None, review_question: str = "refusal",
                     run_items: Sequence[tuple[str, str, str]] = (),
                     suite_items: Sequence[Any] | None = None) -> dict[str, Any]:
    """``{"records", "lineage", "versions", "rm_dir", "rubric"}`` (keys only when known).

    ``suite_items`` (the parsed suite file) are checked against ``registered_suite``."""
    from hilt.gate.lineage import dataset_lineage, model_dataset_versions
    from hilt.gate.store import suite_records

    out: dict[str, Any] = {"records": {}, "versions": {}}
    if registered_suite:
        if suite_items is not None:
            check_registered_suite(session, registered_suite, suite_items)
        found = suite_records(session, [registered_suite])
        if found:
            out["records"]["suites"] = found
    datasets = list(dataset_versions)
    reasons: list[str] = []
    if model_version:
        from_model, model_record, reason = model_dataset_versions(session, model_version)
        datasets += from_model
        reasons += [reason] if reason else []
        out["versions"]["candidate_model_version"] = model_record
        out["records"]["training"] = [{"id": model_record["id"],
                                       "link": model_record["link"]}]
    if datasets or reasons:
        lineage = dataset_lineage(session, datasets, suite_ids, unknown_reasons=reasons,
                                  run_items=run_items)
        out["lineage"] = lineage["lineage"]
        out["versions"]["dataset_versions"] = lineage["versions"]
        out["records"]["dataset_versions"] = lineage["records"]
    if rm_version:
        from hilt.errors import NotFound
        from hilt.train.registry import get_version

        try:
            row = get_version(session, rm_version)
        except NotFound as exc:
            raise InputError(f"model version {rm_version!r} is not registered",
                             field="--rm-version") from exc
        if row.kind != "reward":
            raise InputError(f"model version {rm_version} is a {row.kind} model, not a "
                             "reward model", field="--rm-version")
        out["rm_dir"] = Path(row.artifact_path)
        out["rm_version"] = row.id
    if rubric:
        out["rubric"] = _rubric_facts(session, rubric, review_question)["ref"]
    return out
