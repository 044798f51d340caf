"""Triage: clusters that merge, the deadline a representative takes from its members, and
the validation of triage settings (TriageConfig and ``hilt queue triage --config``)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.cli import app, main
from hilt.errors import InputError
from hilt.review.aggregation import AdjudicationPolicy
from hilt.review.labels import iter_final_labels
from hilt.review.queue import QueueConfig, claim_next
from hilt.review.reviews import Submission, submit_review
from hilt.review.tasks import create_task
from hilt.review.triage import TriageConfig, near_duplicate_groups, run_triage
from hilt.store import audit
from hilt.store.db import make_engine, migrate, transaction
from hilt.store.tables.review import ReviewTaskRow

from .helpers import add_reviewers, event, ingest, publish_examples

T0 = datetime(2030, 1, 1, tzinfo=UTC)
# D is a near-duplicate of both A and E, which are not near-duplicates of each other
# (exact Jaccard of the item texts: A~D 0.87, E~D 0.84, A~E 0.74).
_CORE = " ".join(f"w{i}" for i in range(60))
TEXTS = {"A": " ".join(f"a{i}" for i in range(9)) + " " + _CORE,
         "E": _CORE + " " + " ".join(f"e{i}" for i in range(9)),
         "D": _CORE}
RESPONSE = "ok"
MERGE_CONFIG = TriageConfig(num_perm=256)


def _item(key: str) -> str:
    return TEXTS[key] + "\n" + RESPONSE


def _review(engine: Engine, rid: str, now: datetime) -> str:
    with transaction(engine) as s:
        claim = claim_next(s, rid, now=now, config=QueueConfig(gold_rate=0))
        assert claim is not None
        submit_review(s, claim.task_id, rid, Submission(
            {"verdict": "safe", "refusal": "complies", "helpfulness": 3}), now=now)
        return claim.task_id


def test_merging_clusters_moves_members_to_the_new_representative(engine: Engine) -> None:
    # The precondition the scenario rests on, with these exact settings.
    n = MERGE_CONFIG.num_perm
    assert near_duplicate_groups({k: _item(k) for k in "AE"}, 0.8, n) == []
    assert near_duplicate_groups({k: _item(k) for k in "ADE"}, 0.8, n) == [["A", "D", "E"]]

    publish_examples(engine)
    prompts = {"A": "A", "B": "A", "E": "E", "F": "E", "D": "D"}  # B, F: copies of A, E
    ingest(engine, [event(i, TEXTS[text], response=RESPONSE)
                    for i, text in enumerate(prompts.values())])
    add_reviewers(engine, ["a"])
    ev = {name: f"ev{i:05d}" for i, name in enumerate(prompts)}
    with transaction(engine) as s:
        tid = {name: create_task(s, event_id=ev[name], rubric="harm", actor="lead",
                                 overlap_k=1, now=T0) for name in "ABEF"}
    with transaction(engine) as s:  # two clusters: {A, B} and {E, F}
        assert run_triage(s, T0, config=MERGE_CONFIG)["tasks_clustered"] == 2
    with transaction(engine) as s:
        tid["D"] = create_task(s, event_id=ev["D"], rubric="harm", actor="lead",
                               overlap_k=1, now=T0)
    with transaction(engine) as s:  # D joins both: one representative absorbs the other
        run_triage(s, T0, config=MERGE_CONFIG)
        tasks = list(s.execute(sa.select(ReviewTaskRow)).scalars())
        reps = [t for t in tasks if t.representative_id is None]
        assert len(reps) == 1
        rep = reps[0]
        assert rep.reach == 5
        assert all(t.representative_id == rep.id and t.cluster_id == rep.id
                   and t.status == "clustered" for t in tasks if t is not rep)
        merge = audit.entries(s, action="triage.cluster")[0]  # newest first
        assert merge.payload["reach"] == 5 and len(merge.payload["moved_members"]) == 1

    assert _review(engine, "a", T0) == rep.id
    with transaction(engine) as s:
        statuses = {t.id: t.status for t in s.execute(sa.select(ReviewTaskRow)).scalars()}
        labelled = {lb.task_id for lb in iter_final_labels(s)
                    if lb.provenance == "cluster_propagated"}
    assert set(statuses.values()) == {"resolved"}
    assert labelled == set(tid.values()) - {rep.id}


def test_representative_takes_the_earliest_deadline_of_its_members(engine: Engine) -> None:
    publish_examples(engine)
    text = "please explain in detail how the old steam engine in the museum works"
    ingest(engine, [event(i, text, response="it burns coal") for i in range(2)])
    add_reviewers(engine, ["a"])
    with transaction(engine) as s:
        slow = create_task(s, event_id="ev00000", rubric="harm", actor="lead",
                           severity="sev3", now=T0)  # due in 72 h
    with transaction(engine) as s:  # claimed, so it stays the representative
        claim = claim_next(s, "a", now=T0, config=QueueConfig(gold_rate=0))
        assert claim is not None and claim.task_id == slow
    with transaction(engine) as s:
        urgent = create_task(s, event_id="ev00001", rubric="harm", actor="lead",
                             severity="sev0", now=T0)  # due in 1 h
    with transaction(engine) as s:
        assert run_triage(s, T0)["tasks_clustered"] == 1
        rep = s.get(ReviewTaskRow, slow)
        assert rep is not None and s.get(ReviewTaskRow, urgent).representative_id == slow
        assert (rep.severity, rep.sla_due_at) == (0, T0 + timedelta(hours=1))
    with transaction(engine) as s:
        assert run_triage(s, T0 + timedelta(hours=2))["sla_breaches"] == 1


@pytest.mark.parametrize("differs", [
    {"overlap_k": 5}, {"skills": ["medical"]},
    {"policy": AdjudicationPolicy(mode="any_disagreement")}])
def test_tasks_reviewed_differently_are_not_clustered(engine: Engine,
                                                       differs: dict[str, Any]) -> None:
    publish_examples(engine)
    text = "please explain in detail how the old steam engine in the museum works"
    ingest(engine, [event(i, text, response="it burns coal") for i in range(3)])
    with transaction(engine) as s:
        plain = create_task(s, event_id="ev00000", rubric="harm", actor="lead",
                            overlap_k=1, severity="sev0", now=T0)
        twin = create_task(s, event_id="ev00001", rubric="harm", actor="lead",
                           overlap_k=1, severity="sev0", now=T0)
        other = create_task(s, event_id="ev00002", rubric="harm", actor="lead",
                            **{"overlap_k": 1, "severity": "sev3", **differs}, now=T0)
    with transaction(engine) as s:  # only the twin joins the plain task
        assert run_triage(s, T0)["tasks_clustered"] == 1
        rows = {t.id: t for t in s.execute(sa.select(ReviewTaskRow)).scalars()}
        pair = {rows[plain].representative_id, rows[twin].representative_id}
        assert pair in ({None, plain}, {None, twin})
        assert rows[other].representative_id is None and rows[other].status == "open"


# --- settings ----------------------------------------------------------------------

@pytest.mark.parametrize(("data", "field"), [
    ({"w_sla": "fast"}, "w_sla"),
    ({"w_reach": True}, "w_reach"),
    ({"w_severity": float("nan")}, "w_severity"),
    ({"w_uncertainty": -1}, "w_uncertainty"),
    ({"sla_tau_hours": 0}, "sla_tau_hours"),
    ({"dup_threshold": 1.5}, "dup_threshold"),
    ({"dup_threshold": 0.99}, "dup_threshold"),  # too few LSH bands with 64 permutations
    ({"num_perm": 0}, "num_perm"),
    ({"num_perm": 64.5}, "num_perm"),
    ({"num_perm": 10**7}, "num_perm"),  # every signature would hold ten million hashes
    ({"speed": 3}, "speed"),
    ([1, 2], None),
    ("w_sla", None),
])
def test_bad_settings_are_refused_naming_file_and_field(data: Any, field: str | None
                                                        ) -> None:
    with pytest.raises(InputError) as err:
        TriageConfig.from_dict(data, file="t.yaml")
    assert (err.value.file, err.value.field) == ("t.yaml", field)


def test_good_settings_are_accepted() -> None:
    assert TriageConfig.from_dict(None) == TriageConfig()
    cfg = TriageConfig.from_dict({"w_sla": 3, "sla_tau_hours": 0.5, "dup_threshold": 0.9,
                                  "num_perm": 128, "w_reach": 0})
    assert (cfg.w_sla, cfg.num_perm, cfg.w_reach) == (3, 128, 0)
    with pytest.raises(InputError, match="sla_tau_hours"):
        TriageConfig(sla_tau_hours=-2)


def _cli_error(tmp_path: Path, config: Path) -> InputError:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    result = CliRunner().invoke(app, ["queue", "triage", "--config", str(config),
                                      "--db", db])
    assert isinstance(result.exception, InputError), result.output
    return result.exception


@pytest.mark.parametrize(("text", "line", "field"), [
    ("w_sla: [1\nw_reach: 2\n", 2, None),  # not YAML
    ("w_sla: fast\n", 1, "w_sla"),
    ("sla_tau_hours: 0\n", 1, "sla_tau_hours"),
    ("dup_threshold: 1.5\n", 1, "dup_threshold"),
    ("- w_sla\n- 2\n", 1, None),
    ("w_sla: 1\nw_sla: 2\n", 2, "w_sla"),  # a repeated key would silently drop the first
])
def test_cli_triage_config_errors(tmp_path: Path, text: str, line: int | None,
                                  field: str | None) -> None:
    config = tmp_path / "triage.yaml"
    config.write_text(text)
    exc = _cli_error(tmp_path, config)
    assert (exc.file, exc.line, exc.field) == (str(config), line, field)


def test_cli_triage_missing_config_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert _cli_error(tmp_path, missing).file == str(missing)
    monkeypatch.setattr(sys, "argv", ["hilt", "queue", "triage", "--config", str(missing),
                                      "--db", f"sqlite:///{tmp_path / 'h.db'}"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {missing}") and "Traceback" not in err


def test_cli_triage_with_valid_config(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    migrate(make_engine(db))
    config = tmp_path / "triage.yaml"
    config.write_text("w_sla: 3\nsla_tau_hours: 2\n")
    result = CliRunner().invoke(app, ["queue", "triage", "--config", str(config),
                                      "--db", db])
    assert result.exit_code == 0, result.output
    assert '"priorities_refreshed": 0' in result.output
