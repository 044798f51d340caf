"""``hilt demo``: the loop on the embedded default, from a simulated stream.

Each step is a function that takes the run's state and returns a summary; the CLI
prints them as they finish. The database is left in place so ``hilt serve`` can open it,
and ``report.html`` shows how well the loop recovered the simulator's hidden truth.

The stream is split in time: the first part is reviewed under rubric version 1; then
the rubric is revised (policy v4 flips one category), a bridge set re-reviews old items
under version 2, and the rest of the stream is reviewed under version 2.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.review.tasks import id_source
from hilt.sim.stream import SimConfig, SimItem, simulate_stream
from hilt.store import audit
from hilt.store.db import make_engine, migrate, transaction

FIRST_PART = 0.6  # share of the stream reviewed under rubric version 1
MIN_EVENTS = 200  # fewer events leave too few reviewed items to build and train from
MARKER = ".hilt-demo"  # written into the demo's folder: only such a folder is replaced


def demo_config(n_events: int = 2000, seed: int = 7) -> SimConfig:
    """Two weeks of traffic; the unsafe share rises when the second part starts, and
    enough unsafe requests are answered uselessly for the rubric revision to matter."""
    return SimConfig(n_events=n_events, seed=seed, unsafe_share=0.25,
                     unsafe_share_after=0.4, shift_at=FIRST_PART, refuse_unsafe=0.5,
                     good_response_rate=0.55, span_hours=14 * 24)


@dataclass
class DemoRun:
    workdir: Path
    config: SimConfig
    engine: Engine | None = None
    items: list[SimItem] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    review: Any = None
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'hilt.db'}"

    @property
    def db(self) -> Engine:
        assert self.engine is not None, "run step_init first"
        return self.engine


def check_workdir(workdir: Path) -> None:
    """Refuse a folder the demo may not replace: one that is not a folder, the current
    folder or one above it, or a non-empty folder the demo did not make."""
    path = workdir.resolve()
    if path.exists() and not path.is_dir():
        raise InputError("exists and is not a folder", file=str(path), field="--workdir")
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise InputError("is the current folder or one above it; the demo replaces its "
                         "folder, so name a new one", file=str(path), field="--workdir")
    if not path.exists():
        return
    names = {p.name for p in path.iterdir()}
    # Folders of earlier versions have no marker but hold the demo's own outputs.
    if names and MARKER not in names and not {"summary.json", "hilt.db"} <= names:
        raise InputError("is not empty and was not made by the demo; the demo replaces "
                         "its folder, so name a new or empty one", file=str(path),
                         field="--workdir")


def check_events(n_events: int) -> None:
    if n_events < MIN_EVENTS:
        raise InputError(f"must be at least {MIN_EVENTS} (got {n_events}): fewer leave too "
                         "few reviewed items to build datasets and train from",
                         field="--events")


def fresh_workdir(workdir: Path) -> None:
    """Make ``workdir`` a new folder that holds only the marker, replacing an earlier
    demo folder by renames alone: the new folder, marker written, is made beside it
    under a private name, the old one is renamed aside, the new one renamed in, and
    then the old one is removed (:func:`hilt.train.manifest.replaced_by`). So the
    folder is never left without its marker while it holds an earlier run's files, and
    an interrupted run never stops the next. What a killed run left beside the folder
    is removed once the new folder is in place (:func:`hilt.train.manifest.sweep_stale`).
    A symbolic link to the folder stays; the folder it names is replaced."""
    from hilt.train.manifest import plain_folder_mode, private_folder, replaced_by, sweep_stale

    target = workdir.resolve()
    prefix = f".{target.name}.demo-"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with private_folder(target.parent, prefix) as new:
            (new / MARKER).write_text("made by `hilt demo`; replaced on its next run\n")
            os.chmod(new, plain_folder_mode())
            with replaced_by(new, target, prefix):
                pass
        sweep_stale(target.parent, [prefix])
    except OSError as exc:
        what = "replace" if target.exists() else "create"
        raise InputError(f"cannot {what} the folder: {exc.strerror or exc}",
                         file=str(workdir), field="--workdir") from None


def step_init(run: DemoRun) -> dict[str, Any]:
    check_workdir(run.workdir)
    fresh_workdir(run.workdir)
    run.engine = make_engine(run.db_url)
    migrate(run.engine)
    run.items = simulate_stream(run.config)
    return {"database": run.db_url, "simulated_events": len(run.items)}


def step_review_setup(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_review import ReviewSim, setup_review

    result = setup_review(run.db, run.items)
    run.review = ReviewSim(run.db, {i.event["id"]: i for i in run.items},
                           expected_reviews=int(len(run.items) * 0.45 * 3))
    return result


def _ingest_part(run: DemoRun, part: list[SimItem], name: str) -> dict[str, Any]:
    from hilt.events.ingest import ingest_file

    path = run.workdir / f"events-{name}.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for item in part:
            fh.write(json.dumps(item.event) + "\n")
    first = ingest_file(run.db, path, actor="demo")
    again = ingest_file(run.db, path, actor="demo")
    return {"events": first.received, "new": first.new, "escalated": first.escalated,
            "resent_new": again.new, "resent_duplicates": again.duplicates}


def step_ingest_first(run: DemoRun) -> dict[str, Any]:
    cut = int(len(run.items) * FIRST_PART)
    return _ingest_part(run, run.items[:cut], "part1")


def step_calibration(run: DemoRun) -> dict[str, Any]:
    """Onboarding: every reviewer answers the gold calibration set first."""
    import numpy as np

    from hilt.sim.demo_review import add_gold, work
    from hilt.sim.demo_steps import update_statuses

    rng = np.random.default_rng(run.config.seed + 1)
    ingested = run.items[:int(len(run.items) * FIRST_PART)]
    gold = add_gold(run.db, ingested, max(20, len(run.items) // 50), 1, rng)
    done = work(run.review, [p.name for p in run.review.pool])
    return {"gold_tasks": gold, "calibration_reviews": done["reviews"],
            "statuses": update_statuses(run.db)}


def _refit_and_adjudicate(run: DemoRun) -> dict[str, Any]:
    """The status update refits the label models, which can send resolved cases back to
    adjudication: the adjudicator decides those too, then the tasks are counted."""
    from hilt.review.workflow import adjudicate_all
    from hilt.sim.demo_steps import task_counts, update_statuses

    statuses = update_statuses(run.db)
    reopened = adjudicate_all(run.db, "adj-kim", run.review.decide)
    counts = task_counts(run.db)
    return {"adjudicated_after_refit": reopened, **counts,
            "still_needs_adjudication": counts["tasks_by_status"].get(
                "needs_adjudication", 0), "statuses": statuses}


def step_review_first(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_review import work

    done = work(run.review, [p.name for p in run.review.pool])
    return {**done, **_refit_and_adjudicate(run)}


def step_rubric_revision(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_steps import revise_rubric

    run.review.rubric_version = 2
    return revise_rubric(run.db)


def step_ingest_second(run: DemoRun) -> dict[str, Any]:
    cut = int(len(run.items) * FIRST_PART)
    return _ingest_part(run, run.items[cut:], "part2")


def step_review_second(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_review import work

    done = work(run.review, [p.name for p in run.review.pool])
    return {**done, **_refit_and_adjudicate(run)}


def step_quality(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_quality import label_quality

    result = label_quality(run.db, run.review)
    run.artifacts["quality"] = result
    # each as [value, 95% CI low, high]
    brief = {q: {name: [r[name]["value"], *r[name]["ci"]]
                 for name in ("majority_vote", "dawid_skene", "final_labels")}
             for q, r in result["questions"].items()}
    drifter = next((name for name, r in result["reviewers"].items()
                    if r["kind"] == "drifter"), None)
    return {"accuracy_vs_truth": brief,
            "drifter_flagged_at_progress": (result["reviewers"][drifter]
                                            ["cusum_alarm_progress"] if drifter else None)}


def step_drift(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_steps import drift_readout

    cfg = run.config
    result = drift_readout(run.db, now=cfg.start + timedelta(hours=cfg.span_hours + 24))
    run.artifacts["drift"] = result
    return {"bridge": result["bridge"]["verdict"], "alerts": result["alerts_total"],
            "alerts_by_monitor": result["alerts_by_monitor"]}


def step_datasets(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_data import build_datasets, export_for_training, register_heldout_suite

    suite_id, suite_path = register_heldout_suite(run.db, run.workdir)
    datasets = build_datasets(run.db, run.workdir)
    run.artifacts.update(suite_id=suite_id, suite_path=suite_path)
    run.artifacts["exports"] = export_for_training(run.db, datasets, run.workdir)
    run.artifacts["datasets"] = datasets
    return {"heldout_suite": suite_id,
            **{k: f"{v['version'][:12]} ({v['records']} records)"
               for k, v in datasets.items()},
            "mixed_build_refused": any(v["refused_mixed_build"] for v in datasets.values()),
            **({"classification_split_reseeded": datasets["classification"]["split_reseeded"]}
               if datasets["classification"].get("split_reseeded") else {})}


def step_models(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_release import train_models

    versions = {k: v["version"] for k, v in run.artifacts["datasets"].items()}
    models = train_models(versions, run.artifacts["exports"], db_url=run.db_url,
                          workdir=run.workdir)
    run.artifacts["models"] = models
    rm = models["reward_model"]
    clf = models["refusal_classifier_validation"]
    length = rm.get("bias_probes", {}).get("reward_length_correlation", {})
    return {"rm_heldout_accuracy": _rounded(rm.get("accuracy")),
            "rm_accuracy_ci": [_rounded(rm["accuracy_ci"]["low"]),
                               _rounded(rm["accuracy_ci"]["high"])],
            "rm_ece": _rounded(rm.get("ece")), "rm_pairs_held_out": rm.get("n"),
            "rm_reward_length_correlation": [_rounded(length.get(k))
                                             for k in ("value", "ci_low", "ci_high")],
            "rm_ece_ci": [_rounded(rm.get("ece_ci", {}).get("low")),
                          _rounded(rm.get("ece_ci", {}).get("high"))],
            "refusal_classifier_accuracy": _rounded(clf.get("accuracy")),
            "refusal_classifier_accuracy_ci": [_rounded(clf.get("accuracy_ci_low")),
                                               _rounded(clf.get("accuracy_ci_high"))],
            "refusal_classifier_evaluated_on": clf.get("evaluated_on"),
            "sft_steps": models["sft"]["metrics"].get("steps"),
            "sft_train_loss": _rounded(models["sft"]["metrics"].get("train_loss"))}


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def step_check(run: DemoRun) -> dict[str, Any]:
    from hilt.sim.demo_data import simulated_outputs, suite_items
    from hilt.sim.demo_release import regression_check
    from hilt.sim.demo_review import asset

    items = suite_items()
    truth = {}
    for name, refuse_safe, refuse_unsafe, seed in (("reference", 0.05, 0.85, 21),
                                                   ("candidate", 0.22, 0.97, 22)):
        lines = simulated_outputs(items, refuse_safe=refuse_safe,
                                  refuse_unsafe=refuse_unsafe, seed=seed)
        truth[name] = lines
        path = run.workdir / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"id": x["id"], "response": x["response"]}) + "\n"
                                for x in lines))
    datasets = [v["version"] for v in run.artifacts["datasets"].values()]
    result = regression_check(
        suite=run.artifacts["suite_path"], suite_id=run.artifacts["suite_id"],
        candidate=run.workdir / "candidate.jsonl", reference=run.workdir / "reference.jsonl",
        scorer=run.workdir / "models" / "refusal", gate=asset("gate.yaml"),
        datasets=datasets, db_url=run.db_url, workdir=run.workdir)
    result["true_rates"] = _true_rates(items, truth)
    run.artifacts["check"] = result
    report = result["report"]
    return {"gate": report["outcome"], "exit_code": result["exit_code"],
            "reasons": report["gate"]["reasons"][:4], "true_rates": result["true_rates"]}


def _true_rates(items: list[dict[str, Any]], truth: dict[str, list[dict[str, Any]]]
                ) -> dict[str, Any]:
    from hilt.quality import wilson_interval

    out: dict[str, Any] = {}
    for name, lines in truth.items():
        for expect, metric, refuses in (("comply", "benign_refusal_rate", True),
                                        ("refuse", "unsafe_compliance_rate", False)):
            hits = [x["truth_refuses"] == refuses for x, i in zip(lines, items, strict=True)
                    if i["expect"] == expect]
            lo, hi = wilson_interval(sum(hits), len(hits))
            out[f"{name}.{metric}"] = [round(sum(hits) / len(hits), 4),
                                       round(float(lo), 4), round(float(hi), 4)]
    return out


def step_signoff(run: DemoRun) -> dict[str, Any]:
    """The release owner reads the report and signs; the gate still decides on numbers."""
    from hilt.gate.store import latest, sign_off

    report = run.artifacts["check"]["report"]
    ref = report.get("decision_hash")
    with transaction(run.db) as session:
        row = sign_off(session, str(ref), role="release_owner", signed_by="lead-lou",
                       note="read the demo report") if ref else None
        final = latest(session, str(ref)) if ref else None
    outcome = final.outcome if final is not None else report.get("outcome")
    why = [r for r in (final.record["decision"]["reasons"] if final is not None else [])]
    run.artifacts["gate"] = {"outcome": outcome, "why": "; ".join(why) or "all criteria met",
                             "reasons": why, "hash": final.hash if final is not None else None}
    return {"signed": row is not None, "outcome": outcome, "decision": run.artifacts["gate"]
            ["hash"]}


def step_verify_audit(run: DemoRun) -> dict[str, Any]:
    with transaction(run.db) as session:
        result = audit.verify(session)
    if not result.ok:
        raise RuntimeError(f"audit chain broken: {result.problem}")
    return {"audit_entries": result.entries, "audit_ok": result.ok}


STEPS: list[tuple[str, Callable[[DemoRun], dict[str, Any]]]] = [
    ("init", step_init),
    ("review-setup", step_review_setup),
    ("ingest-1", step_ingest_first),
    ("calibration", step_calibration),
    ("review-1", step_review_first),
    ("rubric-revision", step_rubric_revision),
    ("ingest-2", step_ingest_second),
    ("review-2", step_review_second),
    ("quality", step_quality),
    ("drift", step_drift),
    ("datasets", step_datasets),
    ("models", step_models),
    ("check", step_check),
    ("signoff", step_signoff),
    ("audit", step_verify_audit),
]


def run_demo(workdir: Path, config: SimConfig | None = None,
             echo: Callable[[str], None] = print,
             steps: list[tuple[str, Callable[[DemoRun], dict[str, Any]]]] | None = None
             ) -> DemoRun:
    # Absolute: later steps run CLI commands with this folder as their working
    # directory, where a relative database path would name another database.
    run = DemoRun(workdir=workdir.resolve(), config=config or demo_config())
    check_events(run.config.n_events)
    check_workdir(run.workdir)
    # Task ids break priority ties in the queue, so they decide who reviews what: draw
    # them from the seed for the run to be reproducible.
    ids = random.Random(f"hilt-demo-{run.config.seed}")
    with id_source(lambda: f"{ids.getrandbits(128):032x}"):
        for name, step in steps or STEPS:
            started = time.perf_counter()
            result = step(run)
            result["seconds"] = round(time.perf_counter() - started, 2)
            run.summary[name] = result
            echo(f"[{name}] " + ", ".join(f"{k}={v}" for k, v in result.items()))
    (workdir / "summary.json").write_text(json.dumps(run.summary, indent=2, default=str))
    from hilt.sim.report import write_report

    write_report(workdir / "report.html", run.summary, run.artifacts)
    return run
