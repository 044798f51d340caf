"""The monitors, bridge sets, compatibility decisions and lineage on a real store
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.quality.drift.bridge import (
    bridge_compatibility,
    bridge_status,
    compat_lookup,
    create_bridge,
    record_decision,
)
from hilt.quality.drift.lineage import model_lineage, render_tree
from hilt.quality.drift.runner import acknowledge, list_alerts, run_monitors
from hilt.quality.drift.transition import check_mixable
from hilt.quality.drift.windows import DriftConfig
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_task
from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.drift import DriftAlertRow
from hilt.store.tables.review import FinalLabelRow
from tests.drift.answering import answer_everything

from . import scenario

CONFIG = DriftConfig(lookback_windows=scenario.DAYS, min_window_n=40)


@pytest.mark.slow
def test_run_monitors_finds_the_silent_change_and_is_idempotent(engine: Engine) -> None:
    scenario.base(engine)
    scenario.history(engine)
    now = scenario.T0 + timedelta(days=scenario.DAYS, hours=1)
    with transaction(engine) as s:
        first = run_monitors(s, now, config=CONFIG, actor="scheduler")
    shifted = sorted((a.window_start - scenario.T0).days for a in first
                     if a.monitor == "label_shift")
    assert shifted == list(range(scenario.FLIP_DAY, scenario.DAYS))
    assert {tuple(sorted(a.group.items())) for a in first if a.monitor == "label_shift"} == {
        (("pool", "default"), ("question", "verdict"), ("rubric", "simple@1"))}
    # The adjudication rate and the prompt mix did not change: no alerts there.
    assert not [a for a in first if a.monitor in ("adjudication_rate", "prompt_mix_shift")]
    with transaction(engine) as s:
        again = run_monitors(s, now, config=CONFIG, actor="scheduler")
        stored = s.execute(sa.select(sa.func.count()).select_from(DriftAlertRow)).scalar()
        logged = audit.entries(s, action="drift.alert")
        assert audit.verify(s).ok
    assert again == [] and stored == len(first) == len(logged)
    with transaction(engine) as s:
        rows = list_alerts(s, monitor="label_shift")
        assert len(rows) == len(shifted) and rows[0]["detail"]["p_value"] < rows[0]["alpha"]
        acknowledge(s, rows[0]["id"], actor="lead", note="rubric v2 clarifies borderline")
        assert [r["status"] for r in list_alerts(s, status="acknowledged")] == ["acknowledged"]


def test_bridge_flags_a_flipped_category_until_a_mapping_is_recorded(engine: Engine) -> None:
    scenario.base(engine)
    truth = {f"ev{i:05d}": scenario.CHOICES[i % 3] for i in range(24)}
    from hilt.events.ingest import ingest_events

    ingest_events(engine, [scenario.event(i, scenario.T0) for i in range(24)],
                  actor="service")
    with transaction(engine) as s:
        for eid in truth:
            create_task(s, event_id=eid, rubric="simple@1", actor="lead", overlap_k=1)
    assert answer_everything(engine, truth, "r0") == 24
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("borderline now counts as harmful"), actor="lead")
        made = create_bridge(s, "simple", 1, 2, actor="lead", per_stratum=6, overlap_k=1,
                             seed=3)
    assert made["strata"] == {c: {"available": 8, "sampled": 6} for c in scenario.CHOICES}
    # Under v2 the re-reviewer calls every old 'borderline' item 'harmful'.
    relabel = {e: ("harmful" if v == "borderline" else v) for e, v in truth.items()}
    assert answer_everything(engine, relabel, "r1") == 18
    with transaction(engine) as s:
        status = bridge_status(s, made["bridge_id"])
        assert status["complete"] and status["relabelled"] == 18
        assert status["matrix"]["flagged"] == ["borderline"]
        compat = bridge_compatibility(s, "simple", 1, 2)
        assert compat.status == "incompatible" and not compat.mixable
        problems = check_mixable(["simple@1", "simple@2"], compat_lookup(s))
        assert [p["status"] for p in problems] == ["incompatible"]
        with pytest.raises(InputError):
            record_decision(s, "simple", 1, 2, kind="mapping", reason="x",
                            question_id="verdict", mapping={"borderline": "nonsense"},
                            actor="lead")
        record_decision(s, "simple", 1, 2, kind="mapping", question_id="verdict",
                        mapping={"borderline": "harmful"}, reason="v2 merges borderline",
                        actor="lead", bridge_id=made["bridge_id"])
        assert check_mixable(["simple@1", "simple@2"], compat_lookup(s)) == []
        mapped = bridge_status(s, made["bridge_id"])["matrix"]
        assert mapped["flagged"] == [] and mapped["mapping"] == {"borderline": "harmful"}
        assert audit.entries(s, action="rubric.compat_decision")
        record_decision(s, "simple", 1, 2, kind="withdraw", question_id="verdict",
                        reason="mapping was wrong", actor="lead")
        assert not bridge_compatibility(s, "simple", 1, 2).mixable
        # Bridge re-reviews do not count as labels of the production stream.
        bridge_labels = s.execute(sa.select(sa.func.count()).select_from(FinalLabelRow)
                                  .where(FinalLabelRow.rubric_version == 2)).scalar()
        assert bridge_labels == 18


def test_decisions_and_bridges_need_the_old_version_first(engine: Engine) -> None:
    # Both are stored under (old, new) with old < new, the order compatibility looks
    # them up in; a reversed pair would be recorded and audited but never found.
    scenario.base(engine)
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("v2"), actor="lead")
        with pytest.raises(InputError) as caught:
            record_decision(s, "simple", 2, 1, kind="accept", reason="x", actor="lead")
        assert caught.value.field == "new_version"
        with pytest.raises(InputError) as caught:
            create_bridge(s, "simple", 2, 1, actor="lead")
        assert caught.value.field == "new_version"
        with pytest.raises(InputError):
            record_decision(s, "simple", 0, 1, kind="accept", reason="x", actor="lead")
        assert not audit.entries(s, action="rubric.compat_decision")
        # The read-only compatibility query is symmetric and reports the pair in order.
        compat = bridge_compatibility(s, "simple", 2, 1)
        assert (compat.old_version, compat.new_version) == (1, 2)


def test_lineage_from_model_version_to_rubrics_and_policies(engine: Engine) -> None:
    scenario.base(engine)
    scenario.history(engine)
    from hilt.store.tables.datasets import DatasetRecordRow, DatasetVersionRow
    from hilt.train.registry import register_model_version

    with transaction(engine) as s:
        labels = s.execute(sa.select(FinalLabelRow).limit(5)).scalars().all()
        publish_rubric(s, scenario.rubric("second version"), actor="lead")
        version_id = "d" * 64
        s.add(DatasetVersionRow(id=version_id, name="harm-sft", kind="sft", record_count=5,
                                spec={}, manifest={}, code_version="t", created_by="t",
                                data_path="/nonexistent"))
        s.flush()
        for k, lbl in enumerate(labels):
            s.add(DatasetRecordRow(version_id=version_id, record_key=f"k{k}",
                                   record_hash="h", event_id=lbl.event_id, split="train",
                                   label_ids=[lbl.id], review_ids=lbl.review_ids,
                                   adjudication_ids=[],
                                   rubrics=[f"simple@{1 + (k == 0)}"],
                                   policy_versions=["pol-1"]))
        model = register_model_version(s, manifest={
            "kind": "sft", "base_model": "tiny", "data": {"hash": version_id}, "config": {},
            "seed": 0, "code_version": "t"}, artifact_path="/tmp/m", actor="t")
        tree = model_lineage(s, model.id)
    ds = tree["datasets"][0]
    assert ds["counts"] == {"events": 5, "labels": 5, "reviews": 10, "adjudications": 0}
    assert [r["rubric"] for r in ds["rubric_versions"]] == ["simple@1", "simple@2"]
    assert ds["policy_versions"] == ["pol-1"]
    assert sum(ds["reviews_by_reviewer"].values()) == 10
    # No bridge between the two versions: mixing them is a problem the tree shows.
    assert [p["status"] for p in ds["rubric_mix_problems"]] == ["unknown"]
    text = render_tree(tree)
    assert "rubric simple@2" in text and "policy pol-1" in text and "! mixes simple@1" in text
