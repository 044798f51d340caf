"""Gate decision records: built from stored inputs, hashed, and re-checkable.

A record holds its inputs (the policy in full, every version used, the settings, the
facts and the paired judgment table), the metrics and the decision computed from them,
and ``hash`` = sha256 over the canonical JSON of everything else (``hilt.canonical``).
:func:`verify` recomputes metrics and decision from the inputs and checks the hash, so
both an edited number and an edited verdict are caught. Adding a sign-off produces a new
record that names the one it supersedes; records are never changed in place.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from hilt.canonical import content_hash
from hilt.errors import HiltError
from hilt.evals.metrics import compute_metrics
from hilt.evals.paired import columns_from_table
from hilt.evals.review_sample import apply_review_labels, review_estimates
from hilt.gate.evaluate import CRITERIA_VERSION, evaluate
from hilt.gate.policy import GatePolicy, policy_from_dict

SCHEMA = "hilt.gate.decision/1"
# settings.signoff_rule of records whose sign-offs count each person toward one required
# role only; records without it were made before that rule and recompute without it
ONE_ROLE_PER_PERSON = "one_role_per_person"
# settings.card_rule of records whose contract card answers a suite the lineage finds in
# the training data as contaminated; records without it recompute without that rule
CARD_LINEAGE = "lineage_contamination"


def _inputs_digest(inputs: dict[str, Any]) -> str:
    return content_hash(inputs)


def _facts_for_evaluation(inputs: dict[str, Any]) -> dict[str, Any]:
    """The stored facts plus the one fact the record itself establishes."""
    facts = copy.deepcopy(inputs.get("facts") or {})
    records = facts.setdefault("records", {})
    records["decision_inputs"] = {"reproducible": True,
                                  "link": f"decision-inputs:sha256:{_inputs_digest(inputs)}"}
    return facts


def _derive(inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics and decision from the inputs; returned review labels win over automatic
    judgments, and the review sample's own estimates join the metrics."""
    policy = policy_from_dict(inputs["policy"], file="decision record inputs.policy",
                              recorded=True)
    settings = inputs["settings"]
    sample = inputs.get("review_sample")
    table = apply_review_labels(inputs["judgments"], sample)
    # Records made before settings named a metrics version were computed with version 1.
    version = int(settings.get("metrics_version", 1))
    metrics = compute_metrics(columns_from_table(table),
                              alpha=float(settings["alpha"]),
                              resamples=int(settings["bootstrap_resamples"]),
                              seed=int(settings["seed"]), version=version)
    if sample is not None:
        metrics["review_sample"] = review_estimates(inputs["judgments"], sample,
                                                    float(settings["alpha"]),
                                                    version=version)
    return metrics, evaluate(policy, metrics, _facts_for_evaluation(inputs),
                             one_role_per_person=settings.get("signoff_rule")
                             == ONE_ROLE_PER_PERSON,
                             card_lineage=settings.get("card_rule") == CARD_LINEAGE,
                             # records made before it was named: version 1
                             criteria_version=int(settings.get("criteria_version", 1)))


def build_decision(*, policy: GatePolicy, judgments: dict[str, list[Any]],
                   versions: dict[str, Any], facts: dict[str, Any],
                   settings: dict[str, Any], created_at: str,
                   supersedes: str | None = None,
                   review_sample: dict[str, Any] | None = None) -> dict[str, Any]:
    # a record built from now on (a check, or one superseding an older record) answers
    # its card with the lineage's contamination and judges its criteria as they are
    # judged now
    settings = {**settings, "card_rule": CARD_LINEAGE, "criteria_version": CRITERIA_VERSION}
    inputs = {"policy": policy.as_dict(), "policy_sha256": policy.digest(),
              "versions": versions, "settings": settings, "facts": facts,
              "judgments": judgments}
    if review_sample is not None:
        # Only when there is one, so records without a sample keep their hash.
        inputs["review_sample"] = review_sample
    # Round-trip through canonical JSON so the stored inputs are exactly what we hash.
    import json

    from hilt.canonical import canonical_json

    inputs = json.loads(canonical_json(inputs))
    metrics, decision = _derive(inputs)
    record: dict[str, Any] = {"schema": SCHEMA, "created_at": created_at,
                              "supersedes": supersedes, "inputs": inputs,
                              "metrics": metrics, "decision": decision,
                              "outcome": decision["outcome"]}
    record = json.loads(canonical_json(record))
    record["hash"] = record_hash(record)
    return record


def record_hash(record: dict[str, Any]) -> str:
    return content_hash({k: v for k, v in record.items() if k != "hash"})


def add_signoff(record: dict[str, Any], signoff: dict[str, Any], created_at: str, *,
                lineage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new record with one more sign-off, re-evaluated, superseding ``record``.

    ``lineage``: training-lineage facts re-read since the check, replacing the stored ones
    (:func:`hilt.gate.store.relineage`)."""
    inputs = copy.deepcopy(record["inputs"])
    facts = inputs.setdefault("facts", {})
    facts["signoffs"] = [*facts.get("signoffs", []), signoff]
    if lineage is not None:
        facts["lineage"] = lineage
    policy = policy_from_dict(inputs["policy"], file="decision record inputs.policy",
                              recorded=True)
    # a record signed from now on counts each person toward one role, older ones too
    settings = {**inputs["settings"], "signoff_rule": ONE_ROLE_PER_PERSON}
    return build_decision(policy=policy, judgments=inputs["judgments"],
                          versions=inputs["versions"], facts=facts,
                          settings=settings, created_at=created_at,
                          supersedes=record["hash"],
                          review_sample=inputs.get("review_sample"))


def with_review_labels(record: dict[str, Any], labels: dict[str, Any], created_at: str, *,
                       lineage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new record with the review sample's returned labels, re-evaluated, superseding
    ``record`` (labels of items outside the sample are refused; ``lineage`` as in
    :func:`add_signoff`)."""
    inputs = copy.deepcopy(record["inputs"])
    if lineage is not None:
        inputs.setdefault("facts", {})["lineage"] = lineage
    sample = inputs.get("review_sample")
    if sample is None:
        raise ValueError("the decision has no review sample")
    sampled = {item["id"] for item in sample["items"]}
    outside = sorted(set(labels) - sampled)
    if outside:
        raise ValueError(f"labels for items outside the review sample: {outside[:5]}")
    sample["labels"] = {**sample.get("labels", {}), **labels}
    policy = policy_from_dict(inputs["policy"], file="decision record inputs.policy",
                              recorded=True)
    return build_decision(policy=policy, judgments=inputs["judgments"],
                          versions=inputs["versions"], facts=inputs["facts"],
                          settings=inputs["settings"], created_at=created_at,
                          supersedes=record["hash"], review_sample=sample)


@dataclass
class VerifyReport:
    ok: bool
    hash: str | None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "hash": self.hash, "problems": self.problems}


def _differences(stored: Any, fresh: Any, path: str, out: list[str], limit: int = 10) -> None:
    if len(out) >= limit:
        return
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for key in sorted(set(stored) | set(fresh)):
            if key not in stored or key not in fresh:
                out.append(f"{path}.{key}: present on one side only")
            else:
                _differences(stored[key], fresh[key], f"{path}.{key}", out, limit)
    elif isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            out.append(f"{path}: {len(stored)} entries stored, {len(fresh)} recomputed")
            return
        for i, (a, b) in enumerate(zip(stored, fresh, strict=True)):
            _differences(a, b, f"{path}[{i}]", out, limit)
    elif (isinstance(stored, float | int) and isinstance(fresh, float | int)
          and not isinstance(stored, bool) and not isinstance(fresh, bool)):
        # Tolerance only for floating-point noise across platforms, far below any bound.
        if not math.isclose(stored, fresh, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"{path}: stored {stored!r}, recomputed {fresh!r}")
    elif stored != fresh:
        out.append(f"{path}: stored {stored!r}, recomputed {fresh!r}")


def verify(record: dict[str, Any]) -> VerifyReport:
    """Recompute the decision from the record's inputs; report every disagreement."""
    problems: list[str] = []
    try:
        if record.get("schema") != SCHEMA:
            return VerifyReport(False, record.get("hash"),
                                [f"unknown schema {record.get('schema')!r}"])
        if record_hash(record) != record.get("hash"):
            problems.append("hash does not match the record's content (edited)")
        inputs = record["inputs"]
        policy = policy_from_dict(inputs["policy"], file="decision record inputs.policy",
                                  recorded=True)
        if policy.digest() != inputs.get("policy_sha256"):
            problems.append("policy does not match its recorded sha256")
        metrics, decision = _derive(inputs)
    # a cut or retyped input; an unreadable policy (InputError) is one more edit
    except (KeyError, TypeError, ValueError, IndexError, HiltError) as exc:
        return VerifyReport(False, record.get("hash"),
                            problems + [f"record malformed: {exc!r}"])
    _differences(record.get("metrics"), metrics, "metrics", problems)
    _differences(record.get("decision"), decision, "decision", problems)
    if record.get("outcome") != decision["outcome"]:
        problems.append(f"outcome: stored {record.get('outcome')!r}, recomputed "
                        f"{decision['outcome']!r}")
    return VerifyReport(not problems, record.get("hash"), problems)
