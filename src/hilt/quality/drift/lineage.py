"""Lineage from a model version back to the evidence it was trained on.

model version (registry: ``dataset_hash``) → dataset version (content-addressed, so its
id is that hash) → its records' events, final labels, reviews and adjudications →
the rubric versions and policy versions those labels were made under. Uses the
registry (:func:`hilt.train.registry.get_version`) and dataset lineage
(:func:`hilt.data.versions.lineage`); the rubric versions present are also checked for
mixing (:func:`.transition.check_mixable`), so a dataset that mixes incompatible rubric
versions shows it here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.errors import InputError
from hilt.quality.drift.bridge import compat_lookup
from hilt.quality.drift.transition import check_mixable, parse_version_ref
from hilt.store.tables.core import EventRow
from hilt.store.tables.datasets import DatasetVersionRow
from hilt.store.tables.review import (
    AdjudicationRow,
    FinalLabelRow,
    ReviewRow,
    RubricVersionRow,
)

_CHUNK = 900  # stays under SQLite's bound-parameter limit


MAX_DETAIL_LIMIT = 1000
"""The most reviews, adjudications and missing ids listed per dataset (as HTTP's
``limit``)."""


def _check_limit(detail_limit: int) -> None:
    # A negative limit would list no reviews yet drop the last missing id (ids[:-1]).
    if isinstance(detail_limit, bool) or not 0 <= detail_limit <= MAX_DETAIL_LIMIT:
        raise InputError(f"must be from 0 to {MAX_DETAIL_LIMIT}, not {detail_limit}",
                         field="limit")


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _present(session: Session, column: Any, ids: list[str]) -> set[str]:
    """Which of ``ids`` are rows of ``column``'s table."""
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(session.execute(sa.select(column).where(column.in_(chunk))).scalars())
    return found


def _links(session: Session, found: dict[str, list[str]], detail_limit: int
           ) -> tuple[dict[str, Any], int]:
    """The dataset's links that lead nowhere (ids whose row is gone, per kind: count and
    up to ``detail_limit`` ids) and the number of its events erased since."""
    missing: dict[str, Any] = {}
    for kind, column in (("events", EventRow.id), ("labels", FinalLabelRow.id),
                         ("reviews", ReviewRow.id), ("adjudications", AdjudicationRow.id)):
        wanted = found[f"{kind[:-1]}_ids"]
        gone = sorted(set(wanted) - _present(session, column, wanted))
        if gone:
            missing[kind] = {"count": len(gone), "ids": gone[:detail_limit]}
    erased = 0
    for chunk in _chunks(found["event_ids"]):
        erased += session.execute(sa.select(sa.func.count()).select_from(EventRow).where(
            EventRow.id.in_(chunk), EventRow.erased_at.is_not(None))).scalar_one()
    return missing, erased


def dataset_lineage_tree(session: Session, dataset_version: str, *, detail_limit: int = 20
                         ) -> dict[str, Any]:
    """One dataset version with the reviews, adjudications, rubric and policy versions
    behind it (counts in full; at most ``detail_limit`` reviews and adjudications
    listed).

    ``counts`` are what the dataset's records refer to; ``missing_links`` lists the
    referenced events, labels, reviews and adjudications no longer in the store, and
    ``events_erased`` counts the events erased since (``hilt forget``): in both cases the
    lineage is broken there, and ``missing`` says so in words."""
    from hilt.data.versions import get_version, lineage, summary

    _check_limit(detail_limit)
    row = get_version(session, dataset_version)
    found = lineage(session, row.id)
    reviews: list[dict[str, Any]] = []
    by_reviewer: dict[str, int] = {}
    for chunk in _chunks(found["review_ids"]):
        for r in session.execute(sa.select(ReviewRow.id, ReviewRow.reviewer_id,
                                           ReviewRow.rubric_id, ReviewRow.rubric_version,
                                           ReviewRow.submitted_at)
                                 .where(ReviewRow.id.in_(chunk))):
            by_reviewer[r.reviewer_id] = by_reviewer.get(r.reviewer_id, 0) + 1
            if len(reviews) < detail_limit:
                reviews.append({"id": r.id, "reviewer": r.reviewer_id,
                                "rubric": f"{r.rubric_id}@{r.rubric_version}",
                                "submitted_at": r.submitted_at.isoformat()})
    adjudications: list[dict[str, Any]] = []
    causes: dict[str, int] = {}
    for chunk in _chunks(found["adjudication_ids"]):
        for a in session.execute(sa.select(AdjudicationRow).where(
                AdjudicationRow.id.in_(chunk))).scalars():
            causes[a.cause] = causes.get(a.cause, 0) + 1
            if len(adjudications) < detail_limit:
                adjudications.append({"id": a.id, "adjudicator": a.adjudicator_id,
                                      "cause": a.cause,
                                      "rubric": f"{a.rubric_id}@{a.rubric_version}",
                                      "decided_at": a.decided_at.isoformat()})
    rubrics = []
    for ref in found["rubrics"]:
        rubric_id, version = parse_version_ref(ref)
        rv = session.get(RubricVersionRow, (rubric_id, version))
        rubrics.append({"rubric": ref, "published": rv is not None,
                        **({"title": rv.title, "content_hash": rv.content_hash,
                            "changelog": rv.changelog,
                            "published_at": rv.published_at.isoformat()} if rv else {})})
    missing_links, erased = _links(session, found, detail_limit)
    missing = [f"{m['count']} of {len(found[kind[:-1] + '_ids'])} {kind} the dataset "
               f"refers to are not in this store: {', '.join(m['ids'])}"
               f"{', …' if m['count'] > len(m['ids']) else ''}"
               for kind, m in missing_links.items()]
    if erased:
        missing.append(f"{erased} of {len(found['event_ids'])} events were erased "
                       "(hilt forget): their content is gone")
    return {
        "dataset": summary(row),
        "counts": {"events": len(found["event_ids"]), "labels": len(found["label_ids"]),
                   "reviews": len(found["review_ids"]),
                   "adjudications": len(found["adjudication_ids"])},
        "missing_links": missing_links,
        "events_erased": erased,
        "missing": missing,
        "rubric_versions": rubrics,
        "policy_versions": found["policy_versions"],
        "rubric_mix_problems": check_mixable(found["rubrics"], compat_lookup(session)),
        "reviews_by_reviewer": dict(sorted(by_reviewer.items())),
        "adjudications_by_cause": dict(sorted(causes.items())),
        "reviews": reviews,
        "adjudications": adjudications,
    }


def model_lineage(session: Session, model_version: str, *, detail_limit: int = 20
                  ) -> dict[str, Any]:
    """The chain from a registered model version back to rubrics and policies."""
    from hilt.train.registry import get_version, version_as_dict

    _check_limit(detail_limit)
    model = get_version(session, model_version)
    out: dict[str, Any] = {"model": version_as_dict(model), "datasets": [], "missing": []}
    # The registry keeps one data hash per model; a dataset version's id is the hash of
    # its records, so a model trained on a dataset version finds it by that id. A model
    # trained on a plain file has no dataset version behind it, and says so.
    if session.get(DatasetVersionRow, model.dataset_hash) is not None:
        # its broken links are listed under the dataset's own ``missing``
        out["datasets"].append(dataset_lineage_tree(session, model.dataset_hash,
                                                    detail_limit=detail_limit))
    else:
        out["missing"].append(f"data {model.dataset_hash} is not a dataset version of this "
                              "store (trained on a file?): no reviews or rubrics to trace")
    chain: list[str] = []
    previous = model.previous_id
    while previous and previous not in chain:
        chain.append(previous)
        earlier = session.get(type(model), previous)
        previous = earlier.previous_id if earlier is not None else None
    out["previous_versions"] = chain
    return out


def headline_text(model: dict[str, Any]) -> str:
    """A model version's headline accuracy as the text tree shows it: the value with its
    95 % Wilson interval and n (:func:`hilt.train.registry.headline_accuracy`) and what
    it rests on (held out, out of fold, …), or that it has none (an SFT model's metrics
    hold a loss)."""
    value = model.get("accuracy")
    if value is None:
        return ("no headline accuracy (its metrics hold a loss)" if model.get("kind") == "sft"
                else "no headline accuracy")
    low, high, n = (model.get("accuracy_ci_low"), model.get("accuracy_ci_high"),
                    model.get("accuracy_n"))
    interval = (f"95% CI [{low:.3f}, {high:.3f}]" if low is not None and high is not None
                else "no interval")
    basis = model.get("accuracy_basis")
    return (f"accuracy {value:.3f}, {interval}, n={n if n is not None else 'unknown'}"
            + (f", {basis.replace('_', ' ')}" if basis else ""))


def render_tree(lineage: dict[str, Any]) -> str:
    """The lineage as an indented text tree; the model's line carries its headline
    accuracy with interval and n (:func:`headline_text`)."""
    lines: list[str] = []
    model = lineage.get("model")
    datasets = lineage.get("datasets", [lineage] if "dataset" in lineage else [])
    if model:
        lines.append(f"model {model['id']} ({model['kind']} '{model['name']}', "
                     f"base {model['base_model']}; {headline_text(model)})")
    indent = "  " if model else ""
    for d in datasets:
        ds = d["dataset"]
        c = d["counts"]
        lines.append(f"{indent}dataset {ds['id'][:16]} '{ds['name']}' ({ds['kind']}, "
                     f"{ds['records']} records{', REVOKED' if ds['revoked'] else ''})")
        lines.append(f"{indent}  events {c['events']}, labels {c['labels']}, "
                     f"reviews {c['reviews']}, adjudications {c['adjudications']}")
        for reviewer, n in d["reviews_by_reviewer"].items():
            lines.append(f"{indent}    reviewer {reviewer}: {n} reviews")
        for cause, n in d["adjudications_by_cause"].items():
            lines.append(f"{indent}    adjudications ({cause}): {n}")
        for rv in d["rubric_versions"]:
            detail = (f" '{rv['title']}' {rv['content_hash'][:12]} — {rv['changelog']}"
                      if rv["published"] else " (not published in this store)")
            lines.append(f"{indent}  rubric {rv['rubric']}{detail}")
        for pv in d["policy_versions"]:
            lines.append(f"{indent}  policy {pv}")
        for p in d["rubric_mix_problems"]:
            lines.append(f"{indent}  ! mixes {p['rubric_id']}@{p['old_version']} with "
                         f"@{p['new_version']}: {p['status']} ({p['reason']})")
        for m in d.get("missing", []):
            lines.append(f"{indent}  ! {m}")
    if model:  # a dataset's own problems are listed above, under it
        for m in lineage.get("missing", []):
            lines.append(f"{indent}! {m}")
    if lineage.get("previous_versions"):
        lines.append(f"{indent}previous versions: {' <- '.join(lineage['previous_versions'])}")
    return "\n".join(lines)
