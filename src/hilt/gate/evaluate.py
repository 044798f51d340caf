"""The gate decision as a pure function: ``evaluate(policy, metrics, facts) -> decision``.

``metrics`` is the output of :func:`hilt.evals.metrics.compute_metrics`; ``facts`` is a
plain dict of what the records say:

* ``suites`` — ids of the suites the metrics were measured on,
* ``lineage`` — ``{"status": "known"|"unknown", "reason", "dataset_versions": [{"id",
  "consented", "revoked", "contaminated_with"}]}`` where any of the three facts may be
  ``None`` (unknown),
* ``signoffs`` — ``[{"role", "by", "at", "note"}]``, newer entries also ``"via"``
  (``cli`` or ``api``; not read here) (each person counts toward one required role only),
* ``records`` — what the model contract card is answered from (see ``hilt.gate.card``).

The decision passes only when every criterion passes, the lineage requirements hold, the
required sign-offs are present and, if the policy says so, no contract-card question of a
gated behaviour is unanswered. Every check is reported with the numbers behind it.
"""

from __future__ import annotations

import math
from typing import Any

from hilt.evals.grouping import ALL
from hilt.evals.stats import holm_adjust
from hilt.gate.card import build_card, unanswered_questions
from hilt.gate.policy import WIN_RATE, Behaviour, Criterion, GatePolicy, LineagePolicy

PASS, BLOCK = "pass", "block"
# How criteria are judged. 2: a behaviour none of whose suites is in the run is
# ``suite_not_in_run`` and blocks unless it says ``when_suite_absent: pass``; a
# ``significant_increase`` listing several slices is Holm-adjusted across them. 3: a
# criterion judged on an interval bound (``ci_low``, ``ci_high``) blocks as
# ``alpha_mismatch`` when the run's intervals are at another level than the policy's
# ``alpha``. Records made before (no ``settings.criteria_version``) recompute with
# version 1; each record with its own.
CRITERIA_VERSION = 3
SUITE_NOT_IN_RUN = "suite_not_in_run"
ALPHA_MISMATCH = "alpha_mismatch"
TOO_FEW = "too_few"
# statuses of a criterion that measured nothing
_UNMEASURED = ("no_data", SUITE_NOT_IN_RUN)
_MISSING_INPUT = {
    "guardrail_false_positive_rate": "no guardrail_flagged in the response files",
    "guardrail_false_negative_rate": "no guardrail_flagged in the response files",
    WIN_RATE: "no rewards in the response files and no reward model",
}


def _slices_for(criterion: Criterion, metrics: dict[str, Any]) -> list[str]:
    if criterion.slices == "each":
        return [s for s in metrics["slices"] if s != ALL]
    return list(criterion.slices)


def _judge(criterion: Criterion, entry: dict[str, Any] | None, alpha: float,
           listed_holm: dict[str, float] | None = None, slice_name: str = ALL
           ) -> tuple[str, dict[str, Any], str]:
    """(status, numbers, rule) for one criterion on one slice.

    ``listed_holm``: Holm-adjusted p-values of the slices a criterion lists, when it
    lists several (:func:`_listed_holm`)."""
    kind = criterion.kind
    if kind in ("max_delta", "significant_increase"):
        delta = None if entry is None else entry.get("delta")
        if delta is None:
            return "no_data", {}, "no paired prompts for this metric"
        numbers = {"delta": delta["value"], "ci_low": delta["ci_low"],
                   "ci_high": delta["ci_high"], "n": entry["n"] if entry else 0,
                   "candidate_rate": entry["candidate"]["rate"] if entry else None,
                   "reference_rate": entry["reference"]["rate"] if entry else None}
        if kind == "max_delta":
            value = delta["value"] if criterion.bound == "point" else delta[criterion.bound]
            numbers.update(bound=criterion.bound, bound_value=value, max=criterion.max)
            assert criterion.max is not None
            return ("fail" if value > criterion.max else "pass", numbers,
                    f"delta {criterion.bound} must be ≤ {criterion.max}")
        use_holm = criterion.slices == "each" and criterion.correction == "holm"
        p = delta["mcnemar_p_holm"] if use_holm else delta["mcnemar_p"]
        level = criterion.alpha if criterion.alpha is not None else alpha
        numbers.update(mcnemar_p=delta["mcnemar_p"], p_used=p, alpha=level,
                       correction="holm" if use_holm else "none",
                       candidate_only=delta["candidate_only"],
                       reference_only=delta["reference_only"])
        if listed_holm is not None and slice_name in listed_holm:
            p = listed_holm[slice_name]
            numbers.update(p_used=p, correction="holm",
                           holm_family=sorted(listed_holm))
        failed = delta["value"] > 0 and p < level
        return ("fail" if failed else "pass", numbers,
                f"blocks if delta > 0 and exact McNemar p < {level}")
    # rm_win_rate is one number for the pair; the rates have one entry per side (a
    # reference side on the win-rate is refused when the policy is loaded)
    side = entry if entry is None or criterion.metric == WIN_RATE else entry[criterion.side]
    point = None if side is None else side["rate"] if "rate" in side else side.get("value")
    if side is None or point is None:
        return "no_data", {}, "no prompts for this metric"
    value = point if criterion.bound == "point" else side[criterion.bound]
    numbers = {"side": criterion.side, "rate": point, "ci_low": side["ci_low"],
               "ci_high": side["ci_high"], "bound": criterion.bound, "bound_value": value,
               "n": side["n"] if "n" in side else entry.get("n") if entry else None}
    if kind == "ceiling":
        assert criterion.max is not None
        numbers["max"] = criterion.max
        return ("fail" if value > criterion.max else "pass", numbers,
                f"{criterion.side} {criterion.bound} must be ≤ {criterion.max}")
    assert criterion.min is not None
    numbers["min"] = criterion.min
    return ("fail" if value < criterion.min else "pass", numbers,
            f"{criterion.side} {criterion.bound} must be ≥ {criterion.min}")


def interval_level_differs(criterion: Criterion, run_alpha: Any, policy_alpha: float
                           ) -> bool:
    """Whether ``criterion`` reads an interval bound computed at another level than the
    policy's: a ``ci_high ≤ max`` at alpha 0.5 is a 50 % bound, not the policy's test."""
    return (criterion.kind != "significant_increase"
            and criterion.bound in ("ci_low", "ci_high")
            and not (isinstance(run_alpha, int | float)
                     and math.isclose(float(run_alpha), policy_alpha, rel_tol=1e-12)))


def _evidence(criterion: Criterion, judged: tuple[str, dict[str, Any], str],
              metrics: dict[str, Any], policy_alpha: float, version: int
              ) -> tuple[str, dict[str, Any], str]:
    """A judged criterion, unless it lacks the evidence the policy asks for: fewer
    prompts than ``min_n``, or (version 3) intervals at another level than the policy's."""
    status, numbers, rule = judged
    if status not in ("pass", "fail"):
        return judged
    n = numbers.get("n")
    if criterion.min_n is not None and isinstance(n, int) and n < criterion.min_n:
        return (TOO_FEW, {**numbers, "min_n": criterion.min_n},
                f"only {n} prompts for {criterion.metric}; the criterion needs at least "
                f"{criterion.min_n} ({rule})")
    run_alpha = metrics.get("alpha")
    if version >= 3 and interval_level_differs(criterion, run_alpha, policy_alpha):
        return (ALPHA_MISMATCH, {**numbers, "run_alpha": run_alpha,
                                 "policy_alpha": policy_alpha},
                f"{criterion.bound} was computed at alpha {run_alpha}, the policy's alpha is "
                f"{policy_alpha}: the bound is judged at the policy's level (run the check "
                f"with --alpha {policy_alpha}, or without --alpha)")
    return judged


def _behaviour_applies(behaviour: Behaviour, suites: list[str]) -> bool:
    return "*" in behaviour.suites or any(s in suites for s in behaviour.suites)


def _listed_holm(criterion: Criterion, metrics: dict[str, Any]) -> dict[str, float] | None:
    """Holm-adjusted McNemar p-values across the slices a ``significant_increase``
    criterion lists, when it lists several and asks for Holm: the family is what the
    criterion judges, so its family-wise error rate is what ``alpha`` bounds. Slices the
    run lacks, or with no paired prompts for the metric, are no test and not counted."""
    if (criterion.kind != "significant_increase" or criterion.slices == "each"
            or criterion.correction != "holm" or len(set(criterion.slices)) < 2):
        return None
    family: dict[str, float] = {}
    for name in dict.fromkeys(criterion.slices):
        entry = metrics["slices"].get(name, {}).get(criterion.metric) or {}
        delta = entry.get("delta")
        if delta is not None:
            family[name] = delta["mcnemar_p"]
    return dict(zip(family, holm_adjust(list(family.values())), strict=True))


def evaluate_criteria(policy: GatePolicy, metrics: dict[str, Any], suites: list[str], *,
                      version: int = CRITERIA_VERSION) -> list[dict[str, Any]]:
    """Every criterion on every slice it names, with status, numbers and rule.

    ``version`` (:data:`CRITERIA_VERSION`): 1 reports the criteria of a behaviour whose
    suites are not in the run as ``no_data`` and Holm-adjusts only ``slices: each``;
    before 3 an interval bound is judged at whatever level the run computed it; records
    made with a version recompute with it. A criterion with ``min_n`` judged on fewer
    prompts is ``too_few`` (any version: only policies written since carry it)."""
    results: list[dict[str, Any]] = []
    for behaviour in policy.behaviours:
        applies = _behaviour_applies(behaviour, suites)
        for criterion in behaviour.criteria:
            listed_holm = _listed_holm(criterion, metrics) if version >= 2 else None
            for slice_name in _slices_for(criterion, metrics):
                entry = metrics["slices"].get(slice_name, {}).get(criterion.metric)
                numbers: dict[str, Any]
                if not applies and version >= 2:
                    # a misspelt or outdated suite id must not read as "nothing to
                    # measure here"
                    status, numbers = SUITE_NOT_IN_RUN, {}
                    rule = (f"behaviour {behaviour.name!r} is measured on suites "
                            f"{behaviour.suites}, none of them in the run (its suites: "
                            f"{suites}); " + (
                                "when_suite_absent: pass"
                                if behaviour.when_suite_absent == "pass" else
                                "name the run's suite with --suite-id, or set "
                                "when_suite_absent: pass on a behaviour that another "
                                "run measures"))
                elif not applies:
                    status, numbers, rule = "no_data", {}, "behaviour's suites not used"
                elif slice_name not in metrics["slices"]:
                    # a misspelt slice must not read as "nothing to measure here"
                    status, numbers = "unknown_slice", {}
                    rule = (f"slice {slice_name!r} is not in the run (its slices: "
                            f"{', '.join(sorted(metrics['slices']))})")
                elif criterion.metric not in metrics.get("metrics", ()):
                    # the response files carry no guardrail flags or rewards: nothing was
                    # measured, which must not read as a pass
                    status, numbers = "missing_metric", {}
                    rule = (f"the run has no {criterion.metric} ("
                            f"{_MISSING_INPUT.get(criterion.metric, 'not computed')}; "
                            f"its metrics: {', '.join(metrics.get('metrics', ()))})")
                else:
                    status, numbers, rule = _evidence(
                        criterion, _judge(criterion, entry, policy.alpha, listed_holm,
                                          slice_name), metrics, policy.alpha, version)
                passed = (status == "pass"
                          or (status == "no_data" and criterion.on_no_data == "pass")
                          or (status == SUITE_NOT_IN_RUN
                              and behaviour.when_suite_absent == "pass"))
                results.append({"behaviour": behaviour.name, "id": criterion.id,
                                "kind": criterion.kind, "metric": criterion.metric,
                                "slice": slice_name, "status": status, "passed": passed,
                                "rule": rule, "numbers": numbers})
    return results


def _since(version: dict[str, Any], what: str) -> str:
    """Marks a fact that a re-read after the check (at a sign-off) found worse."""
    return " (since the check)" if what in (version.get("changed_since_check") or []) else ""


def _revoked_when(version: dict[str, Any]) -> str:
    """When a revocation a re-read found happened: a version the store shows revoked
    before the check was wrongly recorded, not revoked since."""
    before = version.get("revoked_before_check")
    if isinstance(before, dict):
        return (" before the check, though the facts said not"
                if before.get("facts_said") is False
                else " before the check, which the facts did not say")
    return _since(version, "revoked")


def evaluate_lineage(rules: LineagePolicy | None, facts: dict[str, Any]) -> dict[str, Any]:
    if rules is None:
        return {"evaluated": False, "status": PASS, "problems": [], "unknown": []}
    lineage = facts.get("lineage") or {}
    suites = set(facts.get("suites") or [])
    problems: list[str] = []
    unknown: list[str] = []
    versions = lineage.get("dataset_versions") or []
    if lineage.get("status") != "known":
        unknown.append(lineage.get("reason") or "training lineage not recorded")
    elif not versions:
        # "known" with no dataset version says nothing about consent or contamination
        unknown.append("lineage names no training dataset version")
    for version in versions:
        vid = version.get("id", "?")
        if rules.require_consent:
            if version.get("consented") is None:
                unknown.append(f"{vid}: consent unknown")
            elif not version["consented"]:
                problems.append(f"{vid}: not every record consented to training"
                                f"{_since(version, 'consent')}")
        if rules.forbid_revoked:
            if version.get("revoked") is None:
                unknown.append(f"{vid}: revocation status unknown")
            elif version["revoked"]:
                problems.append(f"{vid}: revoked{_revoked_when(version)}")
        if rules.forbid_contamination:
            overlap = version.get("contaminated_with")
            if overlap is None:
                unknown.append(f"{vid}: contamination with the suites unknown")
            elif suites & set(overlap):
                problems.append(f"{vid}: contaminated with {sorted(suites & set(overlap))}"
                                f"{_since(version, 'contamination')}")
    status = BLOCK if problems or (unknown and rules.on_unknown == "block") else PASS
    return {"evaluated": True, "status": status, "problems": problems, "unknown": unknown}


def _person(name: Any) -> str:
    """One spelling per person: "Ana", "ana " and "ANA" are one signer, not three."""
    return " ".join(str(name or "").split()).casefold()


def same_person(a: Any, b: Any) -> bool:
    """Whether two sign-off names are one signer, as the sign-off count sees it."""
    return bool(_person(a)) and _person(a) == _person(b)


def _matched_signers(needs: list[tuple[str, int]], signed: dict[str, set[str]]
                     ) -> list[int]:
    """How many people fill each requirement when each person fills one slot at most.

    A maximum bipartite matching (augmenting paths) of people to requirement slots, so a
    person who signed under two roles goes where they are needed: with ana under both
    ``owner`` and ``safety`` and bo under ``owner`` only, both requirements are filled.
    """
    slots = [(index, k) for index, (_, count) in enumerate(needs) for k in range(count)]
    holder: dict[tuple[int, int], str] = {}

    def place(person: str, seen: set[tuple[int, int]]) -> bool:
        for slot in slots:
            if slot in seen or needs[slot[0]][0] not in signed[person]:
                continue
            seen.add(slot)
            if slot not in holder or place(holder[slot], seen):
                holder[slot] = person
                return True
        return False

    for person in sorted(signed):
        place(person, set())
    return [sum(1 for index, _ in holder if index == i) for i in range(len(needs))]


def evaluate_signoffs(policy: GatePolicy, facts: dict[str, Any], *,
                      one_role_per_person: bool = True) -> dict[str, Any]:
    """Required sign-offs against those present, counted by distinct people.

    ``one_role_per_person``: a person counts toward one requirement only, so two
    required roles need two people (records made before this rule recompute without it).
    """
    present = facts.get("signoffs") or []
    needs = [(need.role, need.count) for need in policy.signoffs]
    signed: dict[str, set[str]] = {}
    for s in present:
        if _person(s.get("by")):
            signed.setdefault(_person(s.get("by")), set()).add(str(s.get("role")))
    if one_role_per_person:
        have = _matched_signers(needs, signed)
    else:
        have = [sum(1 for roles in signed.values() if role in roles) for role, _ in needs]
    missing = [{"role": role, "needed": count, "have": got}
               for (role, count), got in zip(needs, have, strict=True) if got < count]
    return {"required": [r.model_dump() for r in policy.signoffs], "present": present,
            "missing": missing, "status": BLOCK if missing else PASS}


def evaluate(policy: GatePolicy, metrics: dict[str, Any], facts: dict[str, Any], *,
             one_role_per_person: bool = True, card_lineage: bool = True,
             criteria_version: int = CRITERIA_VERSION) -> dict[str, Any]:
    """Decide, and say why, from plain data only (``one_role_per_person``: see
    :func:`evaluate_signoffs`; ``card_lineage``: see :func:`build_card`;
    ``criteria_version``: see :func:`evaluate_criteria`).

    From criteria version 2 on, ``skipped`` lists the criteria that pass without having
    measured anything (``no_data`` under ``on_no_data: pass``, ``suite_not_in_run``
    under ``when_suite_absent: pass``), so that a pass never hides them."""
    suites = list(facts.get("suites") or [])
    criteria = evaluate_criteria(policy, metrics, suites, version=criteria_version)
    lineage = evaluate_lineage(policy.lineage, facts)
    signoffs = evaluate_signoffs(policy, facts, one_role_per_person=one_role_per_person)
    card = build_card(policy, metrics, facts, lineage_contamination=card_lineage)
    unanswered = unanswered_questions(card)
    card_blocks = policy.contract_card.block_on_unanswered and bool(unanswered)
    reasons = [f"{c['id']} [{c['slice']}]: {c['rule']} ({c['status']})"
               for c in criteria if not c["passed"]]
    unmeasured = _UNMEASURED if criteria_version >= 2 else ("no_data",)
    if all(c["status"] in unmeasured for c in criteria):
        # a gate that measured nothing (or had nothing to measure) has not shown that the
        # candidate is fit to release
        reasons.append("no criterion was evaluated: the run has no data for any of them "
                       f"(suites in the run: {suites}; check the "
                       "policy's suites, slices and metrics)")
    reasons += [f"lineage: {p}" for p in lineage["problems"]]
    if lineage["status"] == BLOCK and not lineage["problems"]:
        reasons += [f"lineage unknown: {u}" for u in lineage["unknown"]]
    reasons += [f"sign-off missing: {m['role']} ({m['have']}/{m['needed']})"
                for m in signoffs["missing"]]
    if card_blocks:
        reasons += [f"contract card unanswered: {q}" for q in unanswered]
    decision = {"outcome": BLOCK if reasons else PASS, "reasons": reasons}
    if criteria_version >= 2:
        decision["skipped"] = [f"{c['id']} [{c['slice']}]: {c['rule']} ({c['status']})"
                               for c in criteria
                               if c["passed"] and c["status"] in _UNMEASURED]
    return {**decision, "criteria": criteria, "lineage": lineage, "signoffs": signoffs,
            "contract_card": {"block_on_unanswered": policy.contract_card.block_on_unanswered,
                              "unanswered": unanswered, "blocks": card_blocks},
            "card": card}
