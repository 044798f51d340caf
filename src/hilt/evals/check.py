"""The regression check of contract 3, from files to a gate decision and a report.

Order matters for the "nothing half-written" rule: every file is read and validated,
every judgment resolved and the decision computed before anything is written; then
``report.json``, ``report.html`` and ``decision.json`` land in the output folder
atomically (with ``--record``, only after the decision is stored). Exit code: 0 the
gate passes, 1 it blocks (2, bad input, is raised as :class:`~hilt.errors.InputError`
for the CLI to translate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hilt.canonical import canonical_json, sha256_hex
from hilt.errors import InputError
from hilt.evals.facts import VERSION_KEYS, load_facts
from hilt.evals.files import ResponseLine, SuiteItem, parse_responses, parse_suite
from hilt.evals.html import render_html
from hilt.evals.metrics import METRICS_VERSION
from hilt.evals.paired import judgment_table
from hilt.evals.report import (
    build_report,
    check_out_dir,
    failing_examples,
    to_json,
    write_outputs_atomically,
)
from hilt.evals.review_sample import draw_review_sample
from hilt.evals.reward import RewardModel, load_reward_model, score_responses
from hilt.evals.scoring import Scorer, load_scorer, resolve_judgments
from hilt.gate.decision import ONE_ROLE_PER_PERSON, build_decision
from hilt.gate.policy import GatePolicy, default_policy, load_policy


@dataclass(frozen=True)
class CheckResult:
    record: dict[str, Any]
    report: dict[str, Any]
    items: list[SuiteItem] = field(default_factory=list)
    lines: dict[str, dict[str, ResponseLine]] = field(default_factory=dict)
    # report.json, report.html and decision.json as written to the output folder
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if self.record["outcome"] == "pass" else 1


def file_sha256(path: Path) -> str:
    return sha256_hex(path.read_bytes())


def _generation_settings(lines: list[ResponseLine]) -> Any:
    """The settings every line of a response file was generated with (``hilt generate``
    writes them per line); all distinct ones under ``mixed`` when they differ, None when
    no line says."""
    found = [line.settings for line in lines if line.settings is not None]
    if not found:
        return None
    distinct = list({canonical_json(s): s for s in found}.values())
    return distinct[0] if len(distinct) == 1 and len(found) == len(lines) \
        else {"mixed": distinct, "lines_with_settings": len(found)}


def interval_alpha(policy: GatePolicy, alpha: float | None,
                   gate: str | Path | None = None) -> float:
    """The level of the run's intervals: the policy's ``alpha`` unless ``alpha`` is given.

    A criterion judged on ``ci_low``/``ci_high`` tests at the level of the interval, so
    the policy's ``alpha`` governs it: another ``--alpha`` would turn a 95 % bound into a
    50 % one under the same policy hash. Such a policy refuses another level; one without
    interval criteria takes it (it sets only the reported intervals)."""
    from hilt.gate.evaluate import interval_level_differs

    if alpha is None:
        return policy.alpha
    bound = [f"{c.id} ({c.bound})" for b in policy.behaviours for c in b.criteria
             if interval_level_differs(c, alpha, policy.alpha)]
    if bound:
        where = f" in {gate}" if gate is not None else ""
        raise InputError(f"{alpha} is not the policy's alpha ({policy.alpha}{where}), at "
                         f"which its interval criteria {', '.join(bound[:5])} are judged; "
                         f"leave --alpha out or give {policy.alpha}", field="--alpha")
    return alpha


def run_check(*, suite: str | Path, candidate: str | Path, reference: str | Path,
              out: str | Path, gate: str | Path | None = None,
              scorer: str | Path | Scorer | None = None, facts: str | Path | None = None,
              suite_id: str | None = None, candidate_id: str | None = None,
              reference_id: str | None = None, alpha: float | None = None,
              resamples: int = 2000, seed: int = 0, example_limit: int = 200,
              policy: GatePolicy | None = None,
              extra_records: dict[str, Any] | None = None,
              lineage: dict[str, Any] | None = None,
              extra_versions: dict[str, Any] | None = None,
              reward_model: str | Path | RewardModel | None = None,
              review: dict[str, Any] | None = None,
              items: list[SuiteItem] | None = None, write: bool = True) -> CheckResult:
    """Run the whole check.

    ``extra_records`` (e.g. registry facts) join the card's records, taking precedence
    over defaults but not over ``facts``. ``lineage`` and ``extra_versions`` are facts
    read from the store (:mod:`hilt.gate.lineage`); giving the same fact in the facts
    file too is an error rather than a silent choice between two sources.
    ``reward_model`` scores both sides for the RM win-rate; ``review`` (``budget``,
    ``rubric``, ``question``) draws a review sample recorded in the decision (sending it
    to the queue is :func:`hilt.evals.review_loop.send_review_sample`).
    ``write=False`` leaves the folder alone: the caller stores the decision first and
    then writes ``CheckResult.outputs`` (:func:`write_outputs_atomically`).
    """
    check_out_dir(out)
    suite_path, cand_path, ref_path = Path(suite), Path(candidate), Path(reference)
    # ``items``: the suite file already parsed by the caller (the same file)
    items = items if items is not None else parse_suite(suite_path)
    lines = {"candidate": parse_responses(cand_path, items, suite_path),
             "reference": parse_responses(ref_path, items, suite_path)}
    if policy is None:
        policy = load_policy(gate) if gate is not None else default_policy()
    alpha = interval_alpha(policy, alpha, gate)
    loaded_scorer = load_scorer(scorer) if isinstance(scorer, str | Path) else scorer
    rm = (load_reward_model(reward_model) if isinstance(reward_model, str | Path)
          else reward_model)
    recorded = load_facts(facts)
    if lineage is not None and recorded.get("lineage") is not None:
        raise InputError("lineage is read from the dataset-version store for this run; "
                         "remove it from the facts file", file=str(facts), field="lineage")
    for key in extra_versions or {}:
        if (recorded.get("versions") or {}).get(key) is not None:
            raise InputError(f"{key} is read from the store for this run; remove it from "
                             "the facts file", file=str(facts), field=f"versions.{key}")
    generated = {side: _generation_settings(list(lines[side].values()))
                 for side in ("candidate", "reference")}
    if any(generated.values()):
        if (recorded.get("versions") or {}).get("decoder_settings") is not None:
            raise InputError("decoder_settings are read from the response files' "
                             "generation.settings for this run; remove it from the facts "
                             "file", file=str(facts), field="versions.decoder_settings")
        extra_versions = {**(extra_versions or {}), "decoder_settings": generated}
    files = {"candidate": str(cand_path), "reference": str(ref_path)}
    if rm is not None:
        if (recorded.get("versions") or {}).get("reward_model") is not None:
            raise InputError("reward_model is named by the reward model scored with; "
                             "remove it from the facts file", file=str(facts),
                             field="versions.reward_model")
        lines = score_responses(items, lines, rm, files)
    per_side: dict[str, dict[str, Any]] = {}
    for side in ("candidate", "reference"):
        ordered = [lines[side][item.id] for item in items]
        judgments, sources = resolve_judgments(ordered, loaded_scorer, files[side], items)
        per_side[side] = {"lines": ordered, "judgments": judgments, "sources": sources}
    table = judgment_table(items, per_side, files)

    suite_hash = file_sha256(suite_path)
    suite_name = suite_id or suite_path.stem
    given_versions = recorded.get("versions") or {}
    # absolute: the record is re-checked against these files from other folders
    # (hilt gate update, hilt gate verify --inputs)
    versions: dict[str, Any] = {
        "suite": {"id": suite_name, "path": str(suite_path.resolve()), "sha256": suite_hash,
                  "items": len(items)},
        "candidate": {"id": candidate_id or cand_path.stem,
                      "path": str(cand_path.resolve()), "sha256": file_sha256(cand_path)},
        "reference": {"id": reference_id or ref_path.stem,
                      "path": str(ref_path.resolve()), "sha256": file_sha256(ref_path)},
        "scorer": loaded_scorer.describe() if loaded_scorer else None,
        "policy": {"id": policy.id, "version": policy.version, "sha256": policy.digest()},
        **{key: given_versions.get(key) for key in VERSION_KEYS},
    }
    versions.update(extra_versions or {})
    if rm is not None:
        versions["reward_model"] = rm.describe()
    records = {**(extra_records or {}), **(recorded.get("records") or {})}
    records.setdefault("suites", [{"id": suite_name, "version": None,
                                   "content_sha256": suite_hash, "heldout": None,
                                   "link": f"file:{suite_path}#sha256:{suite_hash}"}])
    decision_facts = {"suites": [suite_name],
                      "lineage": lineage or recorded.get("lineage") or {
                          "status": "unknown",
                          "reason": "file-only run: no training lineage recorded"},
                      # sign-offs join later, each with its gate_signoffs row
                      "signoffs": [], "records": records}
    settings = {"alpha": alpha, "bootstrap_resamples": resamples, "seed": seed,
                "metrics_version": METRICS_VERSION, "signoff_rule": ONE_ROLE_PER_PERSON}
    created = datetime.now(UTC).isoformat()
    sample = None
    if review is not None:
        sample = draw_review_sample(table, budget=int(review["budget"]), seed=seed,
                                    candidate_sha256=versions["candidate"]["sha256"],
                                    suite_sha256=suite_hash,
                                    rubric=str(review["rubric"]),
                                    question=str(review["question"]))
    record = build_decision(policy=policy, judgments=table, versions=versions,
                            facts=decision_facts, settings=settings, created_at=created,
                            review_sample=sample)
    failing = failing_examples(items, table, lines, limit=example_limit)
    report = build_report(record, failing)
    outputs = {
        "report.json": json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False)
        + "\n",
        "report.html": render_html(report),
        "decision.json": to_json(record),
    }
    if write:
        write_outputs_atomically(out, outputs)
    return CheckResult(record, report, items, lines, outputs)
