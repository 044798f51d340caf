"""The demo's inputs (workdir, events, seed) and what its report and summary show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hilt.errors import InputError
from hilt.review.tasks import id_source, new_id
from hilt.sim import demo_release
from hilt.sim.demo import MARKER, MIN_EVENTS, STEPS, DemoRun, demo_config, run_demo
from hilt.sim.report import render_report

FIRST_STEPS = STEPS[:5]  # init, review-setup, ingest-1, calibration, review-1
INIT_ONLY = STEPS[:1]


def _quiet(_: str) -> None:
    return None


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HILT_HOME=str(cwd / ".hilt"))
    return subprocess.run([sys.executable, "-m", "hilt", "demo", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


# --- the workdir is replaced only when the demo made it --------------------------------

def test_a_foreign_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(InputError) as err:
        run_demo(folder, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    assert err.value.field == "--workdir"
    assert (folder / "notes.txt").read_text() == "keep me"


def test_the_current_folder_and_its_parents_are_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    (inner / MARKER).write_text("")
    monkeypatch.chdir(inner)
    for target in (Path("."), Path(".."), tmp_path):
        with pytest.raises(InputError, match="current folder") as err:
            run_demo(target, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
        assert err.value.field == "--workdir"
    assert (inner / MARKER).exists()


def test_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "afile.txt"
    target.write_text("data")
    with pytest.raises(InputError, match="not a folder"):
        run_demo(target, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    with pytest.raises(InputError) as err:
        run_demo(target / "sub", demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    assert err.value.field == "--workdir"
    assert target.read_text() == "data"


@pytest.mark.parametrize("contents", [{}, {MARKER: ""},
                                      {"summary.json": "{}", "hilt.db": ""}],
                         ids=["empty", "marked", "earlier-demo"])
def test_a_demo_folder_or_an_empty_one_is_replaced(tmp_path: Path,
                                                   contents: dict[str, str]) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    for name, text in contents.items():
        (folder / name).write_text(text)
    if contents:
        (folder / "stale.txt").write_text("old")
    run_demo(folder, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)
    assert (folder / MARKER).exists()
    assert not (folder / "stale.txt").exists()
    assert json.loads((folder / "summary.json").read_text())["init"]["simulated_events"] \
        == MIN_EVENTS
    # what the demo made, it may replace on the next run
    run_demo(folder, demo_config(MIN_EVENTS), echo=_quiet, steps=INIT_ONLY)


@pytest.mark.slow
def test_cli_refuses_bad_workdir_and_too_few_events_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile.txt").write_text("data")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "x").write_text("x")
    for args in (["--workdir", "afile.txt"], ["--workdir", "."], ["--workdir", "keep"],
                 ["--workdir", "new", "--events", "100"],
                 ["--workdir", "new", "--events", "0"]):
        proc = _cli(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, proc.stderr)
        assert ("--events" if "--events" in args else "--workdir") in lines[0]
        assert "Traceback" not in proc.stderr
    assert (tmp_path / "afile.txt").read_text() == "data"
    assert (tmp_path / "keep" / "x").exists()
    assert not (tmp_path / "new").exists()


def test_too_few_events_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"at least {MIN_EVENTS}") as err:
        run_demo(tmp_path / "demo", demo_config(MIN_EVENTS - 1), echo=_quiet)
    assert err.value.field == "--events"
    assert not (tmp_path / "demo").exists()


# --- the seed decides the run ------------------------------------------------------------

def test_id_source_is_installed_for_a_block_and_restored() -> None:
    digits = iter(["a" * 32, "b" * 32])
    with id_source(lambda: next(digits)):
        assert new_id("task") == "task_" + "a" * 20
        assert new_id("lbl") == "lbl_" + "b" * 20
    assert new_id("task") != new_id("task")


def _stable(summary: dict[str, Any]) -> dict[str, Any]:
    # what differs between two runs by design: timings and the database's path
    return {step: {k: v for k, v in result.items() if k not in ("seconds", "database")}
            for step, result in summary.items()}


@pytest.fixture(scope="module")
def first_runs(tmp_path_factory: pytest.TempPathFactory) -> list[DemoRun]:
    root = tmp_path_factory.mktemp("seeded")
    return [run_demo(root / f"run{i}", demo_config(MIN_EVENTS, seed=7), echo=_quiet,
                     steps=FIRST_STEPS) for i in range(2)]


@pytest.mark.slow
def test_same_seed_gives_the_same_summary(first_runs: list[DemoRun]) -> None:
    a, b = first_runs
    assert _stable(a.summary) == _stable(b.summary)
    # the reviewers split the work the same way
    assert a.review.answers_log == b.review.answers_log
    assert a.summary["calibration"]["statuses"]["rev-fox"] == "suspended"


@pytest.mark.slow
def test_cases_the_refit_reopens_are_adjudicated(first_runs: list[DemoRun]) -> None:
    result = first_runs[0].summary["review-1"]
    assert result["tasks_by_status"].get("needs_adjudication", 0) == 0
    assert result["still_needs_adjudication"] == 0
    assert "adjudicated_after_refit" in result


@pytest.mark.slow
def test_a_case_reopened_by_the_refit_is_adjudicated_again(
        first_runs: list[DemoRun], monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from hilt.sim import demo_steps
    from hilt.sim.demo import _refit_and_adjudicate
    from hilt.store.tables.review import AdjudicationRow, ReviewTaskRow

    run = first_runs[1]
    refit = demo_steps.update_statuses
    reopened: list[str] = []

    def refit_that_reopens(engine: Any) -> dict[str, str]:
        # what a refit does when a model-made label loses confidence (it leaves the
        # tasks an adjudicator decided alone)
        statuses = refit(engine)
        decided = sa.exists().where(AdjudicationRow.task_id == ReviewTaskRow.id)
        with engine.begin() as conn:
            task = conn.execute(sa.select(ReviewTaskRow.id).where(
                ReviewTaskRow.status == "resolved", ReviewTaskRow.is_gold.is_(False),
                ~decided).order_by(ReviewTaskRow.id).limit(1)).scalar_one()
            conn.execute(sa.update(ReviewTaskRow).where(ReviewTaskRow.id == task).values(
                status="needs_adjudication",
                adjudication_reasons={"harmful": "low confidence after refit"}))
        reopened.append(task)
        return statuses

    monkeypatch.setattr(demo_steps, "update_statuses", refit_that_reopens)
    result = _refit_and_adjudicate(run)
    assert reopened and result["adjudicated_after_refit"] == 1
    assert result["still_needs_adjudication"] == 0
    assert "needs_adjudication" not in result["tasks_by_status"]


@pytest.mark.slow
def test_quality_readout_carries_intervals(first_runs: list[DemoRun]) -> None:
    from hilt.sim.demo import step_quality

    run = first_runs[0]
    brief = step_quality(run)["accuracy_vs_truth"]
    for per_method in brief.values():
        for value, low, high in per_method.values():
            assert low <= value <= high
    reviewers = run.artifacts["quality"]["reviewers"]
    estimates = [r["dawid_skene_estimate"] for r in reviewers.values()]
    assert any(e["value"] is not None for e in estimates)
    for e in estimates:
        if e["value"] is not None:
            assert e["ci"][0] <= e["value"] <= e["ci"][1] and e["n"] > 0
    html = render_report(run.summary, run.artifacts)
    est = next(e for e in estimates if e["value"] is not None)
    assert f"{est['value']:.3f} [{est['ci'][0]:.3f}, {est['ci'][1]:.3f}]" in html


# --- the model step and the report -------------------------------------------------------

CLF_METRICS = {"n": 40, "accuracy": 0.9, "accuracy_ci_low": 0.77, "accuracy_ci_high": 0.96}
RM_METRICS = {"n": 20, "accuracy": 0.85, "accuracy_ci": {"low": 0.64, "high": 0.95},
              "ece": 0.1335, "ece_ci": {"low": 0.0819, "high": 0.1872},
              "bias_probes": {}}


def _fake_cli(calls: list[list[str]]) -> Any:
    def fake(args: list[str], *, db_url: str, cwd: Path, ok: tuple[int, ...] = (0,)
             ) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        out = "{}"
        if args[:2] == ["train", "reward"]:
            target = Path(args[args.index("--out") + 1])
            target.mkdir(parents=True)
            (target / "metrics.json").write_text(json.dumps(RM_METRICS))
        elif args[:2] == ["train", "sft"]:
            target = Path(args[args.index("--out") + 1])
            target.mkdir(parents=True)
            (target / "manifest.json").write_text(json.dumps({"metrics": {"steps": 3}}))
        elif args[:2] == ["eval", "classifier"]:
            out = json.dumps(CLF_METRICS)
        return subprocess.CompletedProcess(args, 0, out, "")
    return fake


def _train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_validation: bool
           ) -> tuple[dict[str, Any], list[list[str]]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(demo_release, "hilt_cli", _fake_cli(calls))
    exports = {k: tmp_path / "exports" / k for k in ("preference", "classification", "sft")}
    for path in exports.values():
        path.mkdir(parents=True)
        (path / "train.jsonl").write_text('{"text": "x", "label": "refuse"}\n')
    if with_validation:
        (exports["classification"] / "validation.jsonl").write_text(
            '{"text": "x", "label": "refuse"}\n')
    models = demo_release.train_models(
        {"preference": "p", "classification": "c", "sft": "s"}, exports,
        db_url="sqlite:///x.db", workdir=tmp_path)
    return models, calls


def test_no_validation_split_skips_the_evaluation(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    models, calls = _train(tmp_path, monkeypatch, with_validation=False)
    assert not any(c[:2] == ["eval", "classifier"] for c in calls)
    clf = models["refusal_classifier_validation"]
    assert clf["evaluated_on"] is None and "no validation split" in clf["skipped"]
    html = render_report({}, {"models": models})
    assert "not evaluated" in html and "refusal classifier, validation" not in html


def test_classifier_accuracy_and_ece_carry_their_intervals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hilt.sim.demo import step_models

    models, calls = _train(tmp_path, monkeypatch, with_validation=True)
    assert any(c[:2] == ["eval", "classifier"] for c in calls)
    run = DemoRun(workdir=tmp_path, config=demo_config(MIN_EVENTS))
    run.artifacts.update(datasets={k: {"version": k} for k in
                                   ("preference", "classification", "sft")},
                         exports={})
    monkeypatch.setattr(demo_release, "train_models", lambda *a, **k: models)
    printed = step_models(run)
    assert printed["refusal_classifier_accuracy"] == 0.9
    assert printed["refusal_classifier_accuracy_ci"] == [0.77, 0.96]
    assert printed["rm_ece_ci"] == [0.0819, 0.1872]
    html = render_report({}, {"models": models})
    chart = html[html.index("Held-out accuracy"):html.index("</svg>",
                                                           html.index("Held-out accuracy"))]
    # the classifier's row has its whisker: one interval line per row with an interval
    assert "refusal classifier, validation split (n=40)" in chart
    assert chart.count('stroke-width="2"') == 2
    assert "expected calibration error 0.134 [0.082, 0.187]" in html


def test_drift_alerts_show_intervals_or_counts() -> None:
    detail = {"reference_share_intervals": {"weapons": [0.068, 0.05, 0.092],
                                            "travel": [0.2, 0.17, 0.23]},
              "current_share_intervals": {"weapons": [0.183, 0.13, 0.25],
                                          "travel": [0.19, 0.14, 0.25]}}
    alerts = [{"monitor": "prompt_mix_shift", "detail": detail, "message": "m1"},
              {"monitor": "label_rate", "detail": {}, "n_reference": 500, "n_current": 90,
               "message": "m2"}]
    html = render_report({}, {"drift": {"alerts": alerts, "alerts_total": 2}})
    assert "weapons: 6.8% [5.0%, 9.2%] → 18.3% [13.0%, 25.0%]" in html
    assert "n reference=500, n current=90" in html


def test_report_lists_the_final_decision_and_open_cases() -> None:
    check = {"report": {"outcome": "block", "gate": {"reasons": [
        "brr-noninferior [all]: delta ci_high must be ≤ 0.05 (fail)",
        "sign-off missing: release_owner (0/1)"]}}}
    gate = {"outcome": "block", "why": "", "reasons": [
        "brr-noninferior [all]: delta ci_high must be ≤ 0.05 (fail)"]}
    summary = {"review-2": {"still_needs_adjudication": 3}}
    html = render_report(summary, {"check": check, "gate": gate})
    assert "Reasons of the final decision (block)" in html
    assert "sign-off missing" not in html
    assert "brr-noninferior" in html
    assert "Cases still waiting for adjudication at the end of the review: " \
           "<strong>3</strong>" in html


def test_report_leaves_out_figures_a_tiny_held_out_set_cannot_give() -> None:
    rm = {**RM_METRICS, "bias_probes": {"reward_length_correlation": {
        "value": None, "ci_low": None, "ci_high": None}}}
    html = render_report({}, {"models": {"reward_model": rm, "sft": {"metrics": {}}}})
    assert "correlation of reward with response length" not in html
    assert "expected calibration error 0.134 [0.082, 0.187]" in html
