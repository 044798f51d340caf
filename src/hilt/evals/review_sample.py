"""A human review sample of candidate outputs: drawing it, folding its labels back in,
and estimating rates from it. Pure functions on the decision's judgment table.

**Drawing.** Candidate outputs are stratified by slice × expectation × the judgment the
check used (so every stratum lies inside one metric's population and scorer errors of
each kind are looked at) and sampled with :func:`hilt.evals.sampling.stratified_sample`;
each sampled item's inclusion probability ``π_h = n_h / N_h`` is recorded. The sample never
exceeds the budget: when there are more strata than draws, small strata of one
expectation are merged (``merged_strata`` maps each merged stratum to the stratum it was
sampled in), so every item still belongs to a sampled stratum.

**Folding back.** A returned final label is mapped to a judgment and wins over an
automatic (classifier) judgment; an adjudicated judgment given in the response file is
human already and stays, the disagreement being counted.

**Estimating.** For a rate over a population ``U`` (e.g. candidate refusals among
``expect: comply`` prompts) with a 0/1 human judgment ``y_i`` on the returned items
``r``, the Horvitz–Thompson estimator (Horvitz & Thompson 1952) weights each returned
item by ``1 / π_i``. Items sampled but not yet returned are handled by the usual
weighting-class adjustment (Little 1986): within stratum ``h`` the weight becomes
``w_i = 1 / (π_h · ρ_h)`` with ``ρ_h`` the share of the stratum's sampled items that came
back, i.e. non-response is assumed ignorable within a stratum. Then
``Σ_{i∈r_h} w_i = N_h`` and ::

    p̂ = Σ_{i∈r} w_i y_i / Σ_{i∈r} w_i = Σ_h N_h ȳ_h / Σ_h N_h

which is the stratified estimator, and exactly HT when every sampled item returned.
Its variance under stratified sampling without replacement (Cochran 1977, *Sampling
Techniques*, eq. 5.6) is ::

    V(p̂) = Σ_h W_h² (1 − n_h / N_h) s_h² / n_h,   W_h = N_h / Σ_h N_h

with ``s_h²`` the within-stratum sample variance (for a stratum with one returned item
the Bernoulli maximum 1/4, a conservative choice). The interval is Wilson's on the
effective sample size ``n_eff = p(1 − p) / V`` (Kish 1965; Korn & Graubard 1998), not
``p̂ ± z·√V``: when every returned label in a stratum agrees, ``s_h² = 0`` and the Wald
interval would have zero width from two reviews. Only a full census of every stratum
(``n_h = N_h``) gives the exact, zero-width answer. Strata with no returned item are
left out and the ``coverage`` (share of the population they hold) is reported beside
the estimate.

**Variance floor (metrics version 3).** A stratum whose reviews all agree has
``s_h² = 0`` and so adds no variance: with one such large stratum and one small stratum
showing a refusal, ``n_eff`` came from the small stratum alone, and finding the refusal
*narrowed* the interval (0 of 20 gave [0, 0.161], 1 of 20 [0.010, 0.061], although 97.5 %
of the population rested on 19 agreeing reviews). Each stratum's proportion is therefore
also estimated by the Wilson centre (Agresti & Coull 1998: ``z²/2`` successes and
failures added), ``q_h = (k_h + z²/2) / (n_h + z²)``, and ::

    s̃_h² = max(s_h², q_h(1 − q_h))          (1/4 for a single returned item)
    Ṽ   = Σ_h W_h² (1 − n_h / N_h) s̃_h² / n_h
    n_eff = q(1 − q) / Ṽ,   q = Σ_h W_h q_h

that is, the design effect ``Ṽ / (q(1 − q)/n)`` is estimated at the Wilson-centre
proportions, numerator and variance alike, and the Wilson interval is taken around the
stratified estimate ``p̂`` with that ``n_eff``. An agreeing stratum adds the variance a
Wilson interval on it would imply; a single stratum whose variance is at the floor gives
``n_eff`` = its returned count over the finite-population correction. The bounds no
longer fall when one more review disagrees (checked exhaustively on small designs), and
the interval never collapses. Versions 1 and 2 (records made before) use ``s_h²`` as is and
``n_eff = p̂(1 − p̂) / V``, falling back to the returned count when ``p̂`` is 0 or 1 or
``V = 0``; they are recomputed that way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from hilt.canonical import content_hash
from hilt.evals.sampling import merge_strata, stratified_sample
from hilt.evals.scoring import CLASSIFIER, HUMAN, LABEL_TO_JUDGMENT, is_refusal
from hilt.evals.stats import wilson_interval, z_value

HUMAN_REVIEW = "human_review"
# The first metrics version with the Wilson-centre variance floor (module docstring).
FLOOR_VERSION = 3
_ESTIMATOR_V3 = ("Horvitz–Thompson with within-stratum nonresponse adjustment (= "
                 "stratified mean); Cochran eq. 5.6 variance with each stratum's s² "
                 "floored at q(1 − q), q its Wilson-centre proportion; Wilson interval on "
                 "the effective sample size q(1 − q)/V")
_ESTIMATOR = ("Horvitz–Thompson with within-stratum nonresponse adjustment (= stratified "
              "mean); Cochran eq. 5.6 variance; Wilson interval on the effective sample "
              "size")
_ESTIMATOR_V1 = ("Horvitz–Thompson with within-stratum nonresponse adjustment "
                 "(= stratified mean); Cochran eq. 5.6 variance, normal interval")
STRATA_BY = "slice|expect|judgment"
# inputs.review_sample key: a rate's strata hold only the items of its population
DOMAIN_SIZES = "domain_sizes"


def stratum_of(table: Mapping[str, Sequence[Any]], index: int) -> str:
    return f"{table['slice'][index]}|{table['expect'][index]}|{table['candidate'][index]}"


def review_event_id(candidate_sha256: str, item_id: str,
                    suite_sha256: str | None = None) -> str:
    """The event a sampled candidate output is stored as: one per (candidate file, suite
    file, item) — the output and the prompt it answers — so re-running a check never
    duplicates it, whatever ids, seed or budget the rerun gives. (Records made before the
    suite joined the id name events without it: ``suite_sha256`` None.)"""
    key: dict[str, Any] = {"candidate": candidate_sha256, "item": item_id}
    if suite_sha256 is not None:
        key["suite"] = suite_sha256
    return "evrev_" + content_hash(key)[:32]


def draw_review_sample(table: Mapping[str, Sequence[Any]], *, budget: int, seed: int,
                       candidate_sha256: str, rubric: str, question: str,
                       suite_sha256: str | None = None) -> dict[str, Any]:
    """The sample specification stored in the decision inputs (no labels yet)."""
    strata = [stratum_of(table, i) for i in range(len(table["id"]))]
    expect = list(table["expect"])
    picked = stratified_sample(list(table["id"]), strata, budget, seed=seed, within=expect)
    spec: dict[str, Any] = {
        "rubric": rubric, "question": question, "budget": budget, "seed": seed,
        "strata_by": STRATA_BY,
        "items": [{"id": p.id, "stratum": p.stratum,
                   "inclusion_probability": p.inclusion_probability,
                   "event_id": review_event_id(candidate_sha256, p.id, suite_sha256)}
                  for p in picked],
        "labels": {}}
    merged = {h: m for h, m in merge_strata(strata, budget, within=expect).items() if h != m}
    if merged:
        spec["merged_strata"] = merged
        expects: dict[str, set[str]] = {}
        for h, e in zip(strata, expect, strict=True):
            expects.setdefault(merged.get(h, h), set()).add(e)
        if any(len(found) > 1 for found in expects.values()):
            # a stratum holding both expectations (a budget of 1): each rate counts
            # only its own items of it (records without the key count them all)
            spec[DOMAIN_SIZES] = True
    return spec


def apply_review_labels(table: Mapping[str, Sequence[Any]], sample: Mapping[str, Any] | None
                        ) -> dict[str, list[Any]]:
    """A copy of the table with returned review judgments in place of automatic ones."""
    out = {k: list(v) for k, v in copy.deepcopy(dict(table)).items()}
    if not sample or not sample.get("labels"):
        return out
    position = {item_id: i for i, item_id in enumerate(out["id"])}
    for item_id, label in sample["labels"].items():
        i = position[item_id]
        if out["candidate_source"][i] != HUMAN:
            out["candidate"][i] = label["judgment"]
            out["candidate_source"][i] = HUMAN_REVIEW
    return out


def judgment_of_label(value: Any) -> str | None:
    return LABEL_TO_JUDGMENT.get(str(value))


def _design_wilson(estimate: float, variance: float, returned: int, alpha: float, *,
                   census: bool) -> tuple[float, float]:
    """Wilson interval on the effective sample size ``p̂(1 − p̂) / V`` of a stratified
    estimate (metrics versions 1 and 2)."""
    if census:
        return estimate, estimate  # every item of every covered stratum was reviewed
    informative = variance > 0 and 0 < estimate < 1
    n_eff = estimate * (1 - estimate) / variance if informative else float(returned)
    return wilson_interval(min(max(estimate * n_eff, 0.0), n_eff), n_eff, alpha,
                           exact_ends=False)


def _floored_effective_n(by_stratum: Mapping[str, list[float]], sizes: Mapping[str, int],
                         covered: int, alpha: float) -> float:
    """``n_eff = q(1 − q) / Ṽ`` with each stratum's variance floored at that of its
    Wilson-centre proportion (module docstring, "Variance floor"). Needs a stratum that
    is not a census (else ``Ṽ = 0``)."""
    z2 = z_value(alpha) ** 2
    centre, variance = 0.0, 0.0
    for h, ys in by_stratum.items():
        n_h, size = len(ys), sizes[h]
        weight = size / covered
        q = (sum(ys) + z2 / 2) / (n_h + z2)  # Wilson centre (Agresti & Coull 1998)
        if n_h > 1:
            mean = sum(ys) / n_h
            s2 = max(sum((y - mean) ** 2 for y in ys) / (n_h - 1), q * (1 - q))
        else:
            s2 = 0.25
        centre += weight * q
        variance += weight ** 2 * (1 - n_h / size) * s2 / n_h
    return centre * (1 - centre) / variance


def _stratified_rate(rows: list[tuple[str, float]], sizes: Mapping[str, int],
                     sampled: Mapping[str, int], population: int, alpha: float,
                     version: int = FLOOR_VERSION) -> dict[str, Any]:
    """Nonresponse-adjusted HT / stratified estimate from ``(stratum, y)`` rows."""
    by_stratum: dict[str, list[float]] = {}
    for stratum, y in rows:
        by_stratum.setdefault(stratum, []).append(y)
    covered = sum(sizes[h] for h in by_stratum)
    if not covered:
        empty: dict[str, Any] = {"estimate": None, "ci_low": None, "ci_high": None,
                                 "returned": 0, "population": population,
                                 "coverage": 0.0, "strata": {}}
        return empty if version < FLOOR_VERSION else {**empty, "effective_n": None}
    estimate, variance = 0.0, 0.0
    strata: dict[str, Any] = {}
    for h, ys in sorted(by_stratum.items()):
        n_h, size = len(ys), sizes[h]
        mean = sum(ys) / n_h
        s2 = (sum((y - mean) ** 2 for y in ys) / (n_h - 1)) if n_h > 1 else 0.25
        weight = size / covered
        estimate += weight * mean
        variance += weight ** 2 * (1 - n_h / size) * s2 / n_h
        strata[h] = {"population": size, "sampled": sampled.get(h, 0), "returned": n_h,
                     "mean": mean, "weight_per_item": size / n_h}
    census = all(len(ys) >= sizes[h] for h, ys in by_stratum.items())
    out: dict[str, Any] = {"estimate": estimate}
    if version < FLOOR_VERSION:
        out["ci_low"], out["ci_high"] = _design_wilson(estimate, variance, len(rows), alpha,
                                                       census=census)
    elif census:  # every item of every covered stratum was reviewed
        out.update(ci_low=estimate, ci_high=estimate, effective_n=None)
    else:
        n_eff = _floored_effective_n(by_stratum, sizes, covered, alpha)
        low, high = wilson_interval(min(max(estimate * n_eff, 0.0), n_eff), n_eff, alpha)
        out.update(ci_low=low, ci_high=high, effective_n=n_eff)
    return {**out, "returned": len(rows), "population": population,
            "coverage": covered / population if population else 0.0, "strata": strata}


def review_estimates(table: Mapping[str, Sequence[Any]], sample: Mapping[str, Any],
                     alpha: float, *, version: int = FLOOR_VERSION) -> dict[str, Any]:
    """Rates estimated from the returned review labels (see the module docstring).

    ``version``: the metrics version of the record; version-1 records keep the estimator
    description they were stored with, so they still verify."""
    position = {item_id: i for i, item_id in enumerate(table["id"])}
    merged = sample.get("merged_strata") or {}
    # Each rate's strata sizes and sampled counts. A stratum holding both expectations
    # (all strata merged into one for a budget of 1) is, for a rate, only its items of
    # that rate's population: the sampled ones among them are a simple random sample of
    # those (post-stratification), and counting the others would put the coverage above 1.
    by_domain = bool(sample.get(DOMAIN_SIZES))
    domain_of = {"benign_refusal_rate": "comply", "unsafe_compliance_rate": "refuse",
                 "disagreement_rate": None}
    sizes: dict[str, dict[str, int]] = {name: {} for name in domain_of}
    sampled: dict[str, dict[str, int]] = {name: {} for name in domain_of}
    for i in range(len(table["id"])):
        key = stratum_of(table, i)
        key = merged.get(key, key)
        for name, domain in domain_of.items():
            if not by_domain or domain is None or table["expect"][i] == domain:
                sizes[name][key] = sizes[name].get(key, 0) + 1
    for item in sample["items"]:
        expect = table["expect"][position[item["id"]]]
        for name, domain in domain_of.items():
            if not by_domain or domain is None or expect == domain:
                sampled[name][item["stratum"]] = sampled[name].get(item["stratum"], 0) + 1
    stratum_by_id = {item["id"]: item["stratum"] for item in sample["items"]}
    labels = sample.get("labels") or {}
    rows: dict[str, list[tuple[str, float]]] = {"benign_refusal_rate": [],
                                                "unsafe_compliance_rate": [],
                                                "disagreement_rate": []}
    for item_id, label in labels.items():
        i, h = position[item_id], stratum_by_id[item_id]
        human_refused = is_refusal(label["judgment"])
        metric = ("benign_refusal_rate" if table["expect"][i] == "comply"
                  else "unsafe_compliance_rate")
        rows[metric].append((h, float(human_refused if metric == "benign_refusal_rate"
                                      else not human_refused)))
        before = is_refusal(table["candidate"][i])
        rows["disagreement_rate"].append((h, float(before != human_refused)))
    populations = {"benign_refusal_rate": sum(1 for e in table["expect"] if e == "comply"),
                   "unsafe_compliance_rate": sum(1 for e in table["expect"] if e == "refuse"),
                   "disagreement_rate": len(table["id"])}
    sources = [table["candidate_source"][position[i]] for i in labels]
    return {
        "rubric": sample["rubric"], "question": sample["question"],
        "sampled": len(sample["items"]), "returned": len(labels),
        "returned_over_automatic": sum(1 for s in sources if s == CLASSIFIER),
        "estimator": (_ESTIMATOR_V1 if version == 1 else _ESTIMATOR
                      if version < FLOOR_VERSION else _ESTIMATOR_V3),
        "estimates": {name: _stratified_rate(rows[name], sizes[name], sampled[name],
                                             populations[name], alpha, version=version)
                      for name in rows}}
