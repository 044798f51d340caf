"""The model contract card: five alignment objects, two questions each, per behaviour.

Every answer is assembled only from recorded facts (``facts["records"]``) and the policy
itself, and carries links to the records behind it. A question the records cannot
answer is ``unanswered``; one they answer only in part is ``partial`` and says what is
missing. Nothing is inferred or defaulted.

Records read (all optional, each a list of dicts with a ``link``):

* ``suites`` — ``id``, ``version``, ``content_sha256``, ``heldout`` (registered as
  held-out), ``written_by``, ``filtered_by``, ``approved_by``;
* ``dataset_versions`` — ``id``, ``built_by``, ``approved_by``, ``filters``;
* ``training`` — ``id``, ``objective_terms`` (term → weight), ``logged`` (``masks``,
  ``margins``, ``thresholds`` → bool);
* ``feedback`` — ``evidence`` (what new evidence changes training), ``enters_via``;
* ``decision_inputs`` — ``{"reproducible": bool, "link"}``, written by the decision
  builder when every input of the decision is stored with it.
"""

from __future__ import annotations

from typing import Any

from hilt.gate.policy import Behaviour, GatePolicy

OBJECTS = ("data", "objective", "policy", "evaluation", "feedback")
QUESTIONS: dict[str, tuple[str, str]] = {
    "data": ("Which examples define the target behaviour?",
             "Who wrote, filtered and approved them?"),
    "objective": ("Which terms receive weight?",
                  "Are masks, margins and thresholds logged?"),
    "policy": ("Which actions are allowed or disallowed?",
               "Can reviewers reproduce the decision?"),
    "evaluation": ("Which metric detects regression?",
                   "Is the test private, stable and sliced?"),
    "feedback": ("Which new evidence changes training?",
                 "How does it enter the next dataset version?"),
}
ANSWERED, PARTIAL, UNANSWERED = "answered", "partial", "unanswered"


def _answer(status: str, text: str | None, links: list[str],
            missing: list[str] | None = None) -> dict[str, Any]:
    return {"status": status, "answer": text, "links": links, "missing": missing or []}


def _links(records: list[dict[str, Any]]) -> list[str]:
    return [str(r["link"]) for r in records if r.get("link")]


def _suites_for(behaviour: Behaviour, records: dict[str, Any]) -> list[dict[str, Any]]:
    suites = records.get("suites") or []
    if "*" in behaviour.suites:
        return list(suites)
    return [s for s in suites if s.get("id") in behaviour.suites]


def _people(items: list[dict[str, Any]], roles: tuple[str, ...]) -> tuple[list[str],
                                                                        list[str]]:
    said, missing = [], []
    for item in items:
        for role in roles:
            if item.get(role):
                said.append(f"{item.get('id')}: {role.replace('_', ' ')} {item[role]}")
            else:
                missing.append(f"{item.get('id')}: {role.replace('_', ' ')}")
    return said, missing


def _data(behaviour: Behaviour, records: dict[str, Any], metrics: dict[str, Any]
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    suites = _suites_for(behaviour, records)
    if suites:
        counts = {s: metrics["slices"][s]["counts"] for s in behaviour.slices
                  if s in metrics.get("slices", {})}
        text = "; ".join(f"suite {s.get('id')} v{s.get('version')} "
                         f"(sha256 {str(s.get('content_sha256'))[:12]})" for s in suites)
        text += f"; slices {behaviour.slices} with item counts {counts}"
        math = _answer(ANSWERED, text, _links(suites))
    else:
        math = _answer(UNANSWERED, None, [], ["no suite record for this behaviour"])
    said, missing = _people(suites, ("written_by", "filtered_by", "approved_by"))
    datasets = records.get("dataset_versions") or []
    d_said, d_missing = _people(datasets, ("built_by", "approved_by"))
    said, missing = said + d_said, missing + d_missing
    status = UNANSWERED if not said else (PARTIAL if missing else ANSWERED)
    eng = _answer(status, "; ".join(said) or None, _links(suites) + _links(datasets), missing)
    return math, eng


def _objective(records: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    runs = records.get("training") or []
    terms = [f"{r.get('id')}: {r['objective_terms']}" for r in runs if r.get("objective_terms")]
    math = (_answer(ANSWERED, "; ".join(terms), _links(runs)) if terms and len(terms) == len(runs)
            else _answer(PARTIAL if terms else UNANSWERED, "; ".join(terms) or None,
                         _links(runs), ["objective terms of the training runs not recorded"]))
    said, missing = [], []
    for run in runs:
        logged = run.get("logged") or {}
        for key in ("masks", "margins", "thresholds"):
            if key in logged:
                said.append(f"{run.get('id')}: {key} {'logged' if logged[key] else 'NOT logged'}")
            else:
                missing.append(f"{run.get('id')}: whether {key} are logged")
    if not runs:
        missing = ["no training run recorded"]
    status = UNANSWERED if not said else (PARTIAL if missing else ANSWERED)
    return math, _answer(status, "; ".join(said) or None, _links(runs), missing)


def _policy(behaviour: Behaviour, policy: GatePolicy, records: dict[str, Any]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    link = f"policy:{policy.id}@{policy.version}#sha256:{policy.digest()}"
    rules = "; ".join(f"{c.id}: {c.kind} on {c.metric}" for c in behaviour.criteria)
    math = _answer(ANSWERED, f"{behaviour.description} Decision rule: "
                   f"{behaviour.decision_rule}. Gate criteria: {rules or 'none'}.", [link])
    inputs = records.get("decision_inputs") or {}
    if inputs.get("reproducible"):
        eng = _answer(ANSWERED, "Yes: the judgments, policy, settings and facts are stored "
                      "in the decision record; `hilt gate verify` recomputes the decision.",
                      [str(inputs.get("link"))] if inputs.get("link") else [])
    else:
        eng = _answer(UNANSWERED, None, [], ["decision inputs not stored"])
    return math, eng


def contaminating_versions(lineage: dict[str, Any]) -> dict[str, list[str]]:
    """Suite id → the training dataset versions the lineage found holding its items."""
    out: dict[str, list[str]] = {}
    for version in lineage.get("dataset_versions") or []:
        for suite_id in version.get("contaminated_with") or []:
            out.setdefault(str(suite_id), []).append(str(version.get("id")))
    return out


def _evaluation(behaviour: Behaviour, records: dict[str, Any], metrics: dict[str, Any],
                contaminated: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    math = _answer(ANSWERED, f"{behaviour.regression_metric} (metric {behaviour.metric})",
                   [])
    suites = _suites_for(behaviour, records)
    if not suites:
        return math, _answer(UNANSWERED, None, [], ["no suite record"])
    said, missing = [], []
    for suite in suites:
        heldout = suite.get("heldout")
        found_in = contaminated.get(str(suite.get("id")))
        if found_in:
            # registered held-out or not, a suite the training data holds is not private
            said.append(f"{suite.get('id')}: contaminated, NOT private (training dataset "
                        f"version {', '.join(v[:12] for v in found_in)} holds its items)")
        elif heldout is None:
            missing.append(f"{suite.get('id')}: private (registered held-out) unknown")
        else:
            said.append(f"{suite.get('id')}: {'private' if heldout else 'NOT private'}")
        if suite.get("content_sha256"):
            said.append(f"{suite.get('id')}: stable (content sha256 recorded)")
        else:
            missing.append(f"{suite.get('id')}: content hash")
    n_slices = len([s for s in metrics.get("slices", {}) if s != "all"])
    said.append(f"sliced: {n_slices} slices")
    status = PARTIAL if missing else ANSWERED
    return math, _answer(status, "; ".join(said), _links(suites), missing)


def _feedback(records: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    items = records.get("feedback") or []
    evidence = [str(f["evidence"]) for f in items if f.get("evidence")]
    route = [str(f["enters_via"]) for f in items if f.get("enters_via")]
    math = (_answer(ANSWERED, "; ".join(evidence), _links(items)) if evidence
            else _answer(UNANSWERED, None, [], ["no feedback record"]))
    eng = (_answer(ANSWERED, "; ".join(route), _links(items)) if route
           else _answer(UNANSWERED, None, [], ["no record of how feedback enters data"]))
    return math, eng


def build_card(policy: GatePolicy, metrics: dict[str, Any], facts: dict[str, Any], *,
               lineage_contamination: bool = True) -> dict[str, Any]:
    """One card section per behaviour: ``{object: {mathematical, engineering}}``.

    ``lineage_contamination``: a suite the lineage facts find in the training data is
    answered as contaminated rather than by its held-out flag (records made before this
    rule recompute without it)."""
    records = facts.get("records") or {}
    contaminated = (contaminating_versions(facts.get("lineage") or {})
                    if lineage_contamination else {})
    behaviours = []
    for behaviour in policy.behaviours:
        parts = {"data": _data(behaviour, records, metrics),
                 "objective": _objective(records),
                 "policy": _policy(behaviour, policy, records),
                 "evaluation": _evaluation(behaviour, records, metrics, contaminated),
                 "feedback": _feedback(records)}
        objects = {}
        for name in OBJECTS:
            math, eng = parts[name]
            objects[name] = {
                "mathematical": {"question": QUESTIONS[name][0], **math},
                "engineering": {"question": QUESTIONS[name][1], **eng}}
        behaviours.append({"behaviour": behaviour.name, "gated": bool(behaviour.criteria),
                           "objects": objects})
    return {"behaviours": behaviours}


def unanswered_questions(card: dict[str, Any]) -> list[str]:
    """``behaviour/object/kind`` of every question of a gated behaviour not fully answered."""
    out = []
    for section in card["behaviours"]:
        if not section["gated"]:
            continue
        for name in OBJECTS:
            for kind in ("mathematical", "engineering"):
                if section["objects"][name][kind]["status"] != ANSWERED:
                    out.append(f"{section['behaviour']}/{name}/{kind}")
    return out
