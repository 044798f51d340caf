"""Training lineage for the gate, read from the dataset-version store.

For every training dataset version a decision names, :func:`dataset_lineage` asks
:func:`hilt.data.versions.dataset_facts` whether it is consented (every event still
carries ``train`` consent and is not erased), revoked, and contaminated with the suites
of the run (re-checked now against the held-out registry and against the prompts the run
measured, so an unregistered suite file or a ``--suite-id`` that names another suite
cannot read as clean), and turns the answer into
the plain facts :func:`hilt.gate.evaluate.evaluate_lineage` judges, plus card records
(``dataset_versions``) that link each fact to its record.

Which dataset versions a candidate was trained on comes from the caller (``--dataset``)
and/or from a registered model version: its ``dataset_hash`` names a dataset version
when the model was trained on one (a dataset version's id is the sha256 of its records
file). A model whose data hash names no stored version leaves the lineage unknown, with
the reason, so the policy's ``on_unknown`` decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from hilt.errors import InputError, NotFound


def _link(version_id: str) -> str:
    return f"dataset_version:{version_id}"


def model_dataset_versions(session: Session, model_version_id: str
                           ) -> tuple[list[str], dict[str, Any], str | None]:
    """(dataset version ids, model record, reason if unknown) for a registered model."""
    from hilt.store.tables.datasets import DatasetVersionRow
    from hilt.store.tables.registry import ModelVersionRow

    model = session.get(ModelVersionRow, model_version_id)
    if model is None:
        raise InputError(f"model version {model_version_id!r} is not registered",
                         field="--model-version")
    record = {"id": model.id, "kind": model.kind, "name": model.name,
              "base_model": model.base_model, "dataset_hash": model.dataset_hash,
              "built_by": model.created_by,
              "link": f"model_version:{model.id}#manifest:{model.manifest_hash}"}
    if session.get(DatasetVersionRow, model.dataset_hash) is None:
        return [], record, (f"model version {model.id} was trained on data "
                            f"{model.dataset_hash[:16]}…, which is not a stored dataset "
                            "version")
    return [model.dataset_hash], record, None


def dataset_lineage(session: Session, dataset_version_ids: Sequence[str],
                    suite_ids: Sequence[str], *, unknown_reasons: Sequence[str] = (),
                    run_items: Sequence[tuple[str, str, str]] = ()) -> dict[str, Any]:
    """Lineage facts and card records for the given versions, checked against the suites.

    Returns ``{"lineage": {...}, "records": [...], "versions": [ids]}``. A version id
    that is not stored is bad input. Contamination is reported only with the run's
    suites; ``contaminated_with`` is None when the version's records are gone (revoked
    and deleted) so it cannot be re-checked, or when no held-out text of the run's suites
    was there to check against. ``run_items`` are ``(suite id, item id, text)`` of the
    prompts the run measured; they join the registered held-out texts.
    """
    from hilt.data.sources import default_heldout_source
    from hilt.data.versions import dataset_facts, get_version

    versions: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    ids: list[str] = []
    reasons = list(unknown_reasons)
    heldout = [*default_heldout_source()(session), *run_items]
    for given in dict.fromkeys(dataset_version_ids):
        try:
            row = get_version(session, given)
        except NotFound as exc:
            raise InputError(f"dataset version {given!r} is not stored",
                             field="--dataset") from exc
        except InputError as exc:  # too short or ambiguous: say which option it came from
            raise InputError(exc.reason, field="--dataset") from exc
        facts = dataset_facts(session, row.id, suite_ids=list(suite_ids), heldout=heldout)
        contaminated_with: list[str] | None = None  # unknown: records gone, or no texts
        if facts.contaminated is not None and facts.suites_checked:
            contaminated_with = sorted({hit["suite_id"] for hit in facts.contaminating_items})
        ids.append(row.id)
        versions.append({
            "id": row.id, "name": row.name, "consented": facts.consented,
            "revoked": facts.revoked, "revoked_reason": facts.revoked_reason,
            "contaminated_with": contaminated_with,
            "events_without_consent": len(facts.events_without_consent),
            "erased_events": len(facts.erased_events),
            "contaminating_items": facts.contaminating_items[:20],
            "suites_checked": facts.suites_checked, "link": _link(row.id)})
        records.append({"id": row.id, "name": row.name, "kind": row.kind,
                        "records": row.record_count, "built_by": row.created_by,
                        "filters": sorted((row.spec or {}).keys()),
                        "code_version": row.code_version, "link": _link(row.id)})
    known = bool(ids) and not reasons
    lineage: dict[str, Any] = {"status": "known" if known else "unknown",
                               "source": "dataset-version store",
                               "dataset_versions": versions}
    if not known:
        lineage["reason"] = "; ".join(reasons) or "no training dataset version named"
    return {"lineage": lineage, "records": records, "versions": ids}


def _before(when: Any, checked_at: Any) -> bool:
    """Whether the ISO time ``when`` lies before ``checked_at`` (False if either is not
    a time)."""
    from datetime import UTC, datetime

    try:
        a, b = datetime.fromisoformat(str(when)), datetime.fromisoformat(str(checked_at))
    except ValueError:
        return False
    a, b = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (a, b))
    return a < b


def _worse(stored: dict[str, Any], fresh: dict[str, Any], checked_at: Any = None
           ) -> tuple[dict[str, Any], list[str]]:
    """One version's stored facts with whatever the fresh read found worse, and what.

    A version the store shows revoked before ``checked_at`` (the check's time) was not
    revoked since the check: the facts the check was given were wrong, and the version
    says so (``revoked_before_check``, with what the facts said)."""
    merged = dict(stored)
    changed: list[str] = []
    if fresh.get("revoked") is True and stored.get("revoked") is not True:
        merged["revoked"], merged["revoked_reason"] = True, fresh.get("revoked_reason")
        if fresh.get("revoked_at") is not None:
            merged["revoked_at"] = fresh["revoked_at"]
            if checked_at is not None and _before(fresh["revoked_at"], checked_at):
                merged["revoked_before_check"] = {"facts_said": stored.get("revoked")}
        changed.append("revoked")
    if fresh.get("consented") is False and stored.get("consented") is not False:
        merged["consented"] = False
        for key in ("events_without_consent", "erased_events"):
            merged[key] = fresh.get(key, stored.get(key))
        changed.append("consent")
    new_suites = set(fresh.get("contaminated_with") or []) - set(
        stored.get("contaminated_with") or [])
    if new_suites:
        merged["contaminated_with"] = sorted({*(stored.get("contaminated_with") or []),
                                              *new_suites})
        merged["contaminating_items"] = fresh.get("contaminating_items", [])
        changed.append("contamination")
    if changed:
        merged["changed_since_check"] = sorted({*stored.get("changed_since_check", []),
                                                *changed})
    return merged, changed


def worsened_lineage(stored: dict[str, Any], fresh: dict[str, Any], at: str, *,
                     checked_at: Any = None, not_stored: Sequence[str] = ()
                     ) -> dict[str, Any] | None:
    """The stored lineage updated with a fresh read where it got worse, or None.

    A decision's facts are read when it is checked; a dataset version revoked, a consent
    withdrawn or a suite found in the training data afterwards must not let a later
    sign-off pass on the old facts. Only worse facts are taken: a fresh read made without
    the run's prompts (which the check had) can find less contamination, not more safety.
    ``checked_at``: when the check ran (a revocation before it is no change since it).
    ``not_stored``: versions the store does not hold (named in a facts file): taken as
    recorded, and the re-read says so (``not_in_store``).
    """
    fresh_by_id = {v.get("id"): v for v in fresh.get("dataset_versions") or []}
    versions, changes = [], []
    for version in stored.get("dataset_versions") or []:
        merged, changed = _worse(version, fresh_by_id.get(version.get("id"), {}),
                                 checked_at)
        versions.append(merged)
        changes += [f"{version.get('id')}: {what}" for what in changed]
    if not changes and not not_stored:
        return None
    entry: dict[str, Any] = {"at": at, "changes": changes}
    if not_stored:
        entry["not_in_store"] = list(not_stored)
        entry["note"] = ("versions not in the dataset-version store are taken from the "
                         "facts as recorded, not re-read")
    return {**stored, "dataset_versions": versions,
            "rechecked": [*stored.get("rechecked", []), entry]}
