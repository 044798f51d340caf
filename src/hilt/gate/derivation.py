"""What a superseding decision record may change from the record it supersedes.

A record that names ``supersedes`` takes the place of that record: ``hilt gate show`` of
the decision, the dashboard and a CI job read the newest one. It is made by one of two
operations, and each changes little:

* a sign-off (:func:`hilt.gate.decision.add_signoff`) appends one entry to
  ``inputs.facts.signoffs``;
* folding in returned review labels (:func:`hilt.gate.decision.with_review_labels`)
  adds or updates entries of ``inputs.review_sample.labels``;

and both may carry lineage facts re-read from the store that got worse
(:func:`hilt.gate.lineage.worsened_lineage`), and move the record's rule settings
(``signoff_rule``, ``card_rule``, ``criteria_version``) to today's. Everything else —
the policy and its sha256, the versions, the judgment table, the metric settings (alpha,
seed, metrics version), the suites and card records, the sample itself — is the
parent's. A record built any other way (a looser policy, a dropped sign-off rule, an
older metrics version) verifies on its own, since it is consistent with itself, but is
no successor of the record it names: :func:`derivation_problems` says why.
"""

from __future__ import annotations

from typing import Any

from hilt.gate.decision import CARD_LINEAGE, ONE_ROLE_PER_PERSON
from hilt.gate.evaluate import CRITERIA_VERSION

# settings a superseding record may move, each only to today's value
MOVABLE_SETTINGS = {"signoff_rule": ONE_ROLE_PER_PERSON, "card_rule": CARD_LINEAGE,
                    "criteria_version": CRITERIA_VERSION}
# per dataset version: a fact that may only get worse, and the keys that go with it
_WORSE_ONLY = {"revoked": ("revoked_reason", "revoked_at", "revoked_before_check"),
               "consented": ("events_without_consent", "erased_events"),
               "contaminated_with": ("contaminating_items",)}


def derivation_problems(parent: dict[str, Any], child: dict[str, Any]) -> list[str]:
    """Why ``child`` is not derived from ``parent`` by a sign-off or returned review
    labels (empty when it is). Each problem names the field of ``inputs``."""
    problems: list[str] = []
    if child.get("supersedes") != parent.get("hash"):
        problems.append(f"supersedes: names {child.get('supersedes')!r}, not the record "
                        f"{parent.get('hash')!r}")
    old, new = parent.get("inputs") or {}, child.get("inputs") or {}
    for key in sorted(set(old) | set(new)):
        if key not in ("settings", "facts", "review_sample") and old.get(key) != new.get(key):
            problems.append(f"inputs.{key}: differs from the superseded record's (a "
                            "superseding record keeps its policy, versions and judgments)")
    problems += _settings_problems(old.get("settings") or {}, new.get("settings") or {})
    old_facts, new_facts = old.get("facts") or {}, new.get("facts") or {}
    for key in sorted(set(old_facts) | set(new_facts)):
        if key not in ("signoffs", "lineage") and old_facts.get(key) != new_facts.get(key):
            problems.append(f"inputs.facts.{key}: differs from the superseded record's")
    added = _signoff_problems(old_facts.get("signoffs") or [],
                              new_facts.get("signoffs") or [], problems)
    problems += lineage_problems(old_facts.get("lineage"), new_facts.get("lineage"))
    relabelled = changed_labels(parent, child, problems)
    if not problems and added and relabelled:
        problems.append("a superseding record adds one sign-off or returned review labels, "
                        "not both")
    if not problems and not added and not relabelled:
        problems.append("a superseding record adds a sign-off or returned review labels; "
                        "this one adds neither")
    return problems


def _settings_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    problems = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key in MOVABLE_SETTINGS and new.get(key) == MOVABLE_SETTINGS[key]:
            continue  # a record built now is judged by today's rules
        problems.append(f"inputs.settings.{key}: {new.get(key)!r}, the superseded record "
                        f"has {old.get(key)!r}")
    return problems


def _signoff_problems(old: list[Any], new: list[Any], problems: list[str]) -> bool:
    """Whether ``new`` appends one sign-off to ``old``; other changes go to ``problems``."""
    if new[:len(old)] != old:
        problems.append("inputs.facts.signoffs: the superseded record's sign-offs are "
                        "changed or dropped")
        return False
    if len(new) - len(old) > 1:
        problems.append(f"inputs.facts.signoffs: {len(new) - len(old)} sign-offs added; a "
                        "sign-off adds one")
    for entry in new[len(old):]:
        if not (isinstance(entry, dict) and isinstance(entry.get("role"), str)
                and isinstance(entry.get("by"), str)):
            problems.append(f"inputs.facts.signoffs: {entry!r} is no sign-off entry")
    return len(new) > len(old)


def changed_labels(parent: dict[str, Any], child: dict[str, Any],
                   problems: list[str] | None = None) -> dict[str, Any]:
    """The review labels ``child`` adds or changes (``{item id: label}``); changes to the
    sample other than its labels go to ``problems``."""
    problems = problems if problems is not None else []
    old = (parent.get("inputs") or {}).get("review_sample")
    new = (child.get("inputs") or {}).get("review_sample")
    if old is None or new is None:
        if old != new:
            problems.append("inputs.review_sample: differs from the superseded record's")
        return {}
    if not isinstance(old, dict) or not isinstance(new, dict):
        problems.append("inputs.review_sample: not an object")
        return {}
    if {k: v for k, v in old.items() if k != "labels"} != \
            {k: v for k, v in new.items() if k != "labels"}:
        problems.append("inputs.review_sample: the sample differs from the superseded "
                        "record's (only its labels may be added)")
    old_labels, new_labels = old.get("labels") or {}, new.get("labels") or {}
    if not isinstance(old_labels, dict) or not isinstance(new_labels, dict):
        problems.append("inputs.review_sample.labels: not an object")
        return {}
    dropped = sorted(set(old_labels) - set(new_labels))
    if dropped:
        problems.append(f"inputs.review_sample.labels: returned labels dropped ({dropped[:5]})")
    return {k: v for k, v in new_labels.items() if old_labels.get(k) != v}


def label_problems(changed: dict[str, Any], returned: dict[str, Any]) -> list[str]:
    """Labels a superseding record adds that are not the final labels the review store
    returned for the sample (``returned``:
    :func:`hilt.evals.review_loop.collect_review_labels`)."""
    return [f"inputs.review_sample.labels.{item}: not the final label the review store "
            f"holds for it ({(returned.get(item) or {}).get('judgment')!r} there, "
            f"{(label or {}).get('judgment')!r} in the record)"
            for item, label in sorted(changed.items()) if returned.get(item) != label]


def lineage_problems(old: Any, new: Any) -> list[str]:
    """Lineage may change only by facts re-read from the store that got worse: a version
    revoked, a consent lost, contamination found (and the notes saying so)."""
    if old == new:
        return []
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ["inputs.facts.lineage: differs from the superseded record's"]
    problems = [f"inputs.facts.lineage.{key}: differs from the superseded record's"
                for key in sorted(set(old) | set(new))
                if key not in ("dataset_versions", "rechecked") and old.get(key) != new.get(key)]
    old_checks, new_checks = old.get("rechecked") or [], new.get("rechecked") or []
    if new_checks[:len(old_checks)] != old_checks:
        problems.append("inputs.facts.lineage.rechecked: earlier re-reads changed or dropped")
    versions, fresh = old.get("dataset_versions") or [], new.get("dataset_versions") or []
    ids = [v.get("id") if isinstance(v, dict) else v for v in versions]
    if [v.get("id") if isinstance(v, dict) else v for v in fresh] != ids:
        return problems + ["inputs.facts.lineage.dataset_versions: other versions than the "
                           "superseded record's"]
    for before, after in zip(versions, fresh, strict=True):
        if isinstance(before, dict) and isinstance(after, dict):
            problems += _version_problems(before, after)
        elif before != after:
            problems.append("inputs.facts.lineage.dataset_versions: differs")
    return problems


def _version_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    where = f"inputs.facts.lineage.dataset_versions[{old.get('id')!r}]"
    problems = []
    worse = {"revoked": new.get("revoked") is True and old.get("revoked") is not True,
             "consented": new.get("consented") is False and old.get("consented") is not False,
             "contaminated_with": isinstance(new.get("contaminated_with"), list) and (
                 set(new["contaminated_with"]) > set(old.get("contaminated_with") or []))}
    allowed = {"changed_since_check"}
    for fact, companions in _WORSE_ONLY.items():
        if worse[fact]:
            allowed |= {fact, *companions}
    if not set(old.get("changed_since_check") or []) <= set(
            new.get("changed_since_check") or []):
        problems.append(f"{where}.changed_since_check: earlier changes dropped")
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key) and key not in allowed:
            problems.append(f"{where}.{key}: {new.get(key)!r}, the superseded record has "
                            f"{old.get(key)!r} (a re-read may only find a fact worse)")
    return problems
