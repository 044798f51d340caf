"""Lineage names the links that lead nowhere: reviews, labels, adjudications and events
a dataset refers to that are gone from the store, and the events erased since."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.data.forget import erase_subject
from hilt.quality.drift.lineage import dataset_lineage_tree, model_lineage, render_tree
from hilt.store.db import transaction
from hilt.store.tables.core import EventRow
from hilt.store.tables.datasets import DatasetRecordRow, DatasetVersionRow
from hilt.store.tables.review import AdjudicationRow, FinalLabelRow, ReviewRow
from hilt.train.registry import register_model_version

from . import scenario

VERSION = "e" * 64


def _dataset(engine: Engine, n: int = 6) -> dict[str, Any]:
    """A dataset version over ``n`` labels of the scenario, one of them adjudicated, and a
    model trained on it; returns the ids it refers to and the model version."""
    scenario.base(engine)
    scenario.history(engine)
    with transaction(engine) as s:
        labels = s.execute(sa.select(FinalLabelRow).order_by(FinalLabelRow.id).limit(n)
                           ).scalars().all()
        adjudication = s.execute(sa.select(AdjudicationRow.id).limit(1)).scalar_one()
        s.add(DatasetVersionRow(id=VERSION, name="lin", kind="sft", record_count=n,
                                spec={}, manifest={}, code_version="t", created_by="t",
                                data_path="/nonexistent"))
        s.flush()
        for k, lbl in enumerate(labels):
            s.add(DatasetRecordRow(version_id=VERSION, record_key=f"k{k}", record_hash="h",
                                   event_id=lbl.event_id, split="train", label_ids=[lbl.id],
                                   review_ids=lbl.review_ids,
                                   adjudication_ids=[adjudication] if k == 0 else [],
                                   rubrics=["simple@1"], policy_versions=["pol-1"]))
        model = register_model_version(s, manifest={
            "kind": "sft", "base_model": "tiny", "data": {"hash": VERSION}, "config": {},
            "seed": 0, "code_version": "t"}, artifact_path="/tmp/m", actor="t")
        return {"labels": [lbl.id for lbl in labels], "events": [lbl.event_id for lbl in labels],
                "reviews": [r for lbl in labels for r in lbl.review_ids],
                "adjudication": adjudication, "model": model.id}


def test_an_intact_lineage_reports_nothing_missing(engine: Engine) -> None:
    ids = _dataset(engine)
    with transaction(engine) as s:
        tree = model_lineage(s, ids["model"])
    ds = tree["datasets"][0]
    assert ds["counts"] == {"events": 6, "labels": 6, "reviews": 12, "adjudications": 1}
    assert ds["missing_links"] == {} and ds["events_erased"] == 0
    assert ds["missing"] == [] and tree["missing"] == []
    assert "!" not in render_tree(tree)


def test_deleted_reviews_labels_adjudications_and_events_are_listed(engine: Engine) -> None:
    ids = _dataset(engine)
    gone_reviews = sorted(ids["reviews"][:3])
    with transaction(engine) as s:
        s.execute(sa.delete(ReviewRow).where(ReviewRow.id.in_(gone_reviews)))
        s.execute(sa.delete(FinalLabelRow).where(FinalLabelRow.id == ids["labels"][1]))
        s.execute(sa.delete(AdjudicationRow).where(AdjudicationRow.id == ids["adjudication"]))
        s.execute(sa.update(DatasetRecordRow).where(DatasetRecordRow.record_key == "k5")
                  .values(event_id="ev-not-stored"))
    with transaction(engine) as s:
        tree = model_lineage(s, ids["model"])
        alone = dataset_lineage_tree(s, VERSION, detail_limit=2)
    ds = tree["datasets"][0]
    # counts are what the dataset refers to; the gaps are listed beside them
    assert ds["counts"] == {"events": 6, "labels": 6, "reviews": 12, "adjudications": 1}
    assert sum(ds["reviews_by_reviewer"].values()) == 9
    assert ds["missing_links"] == {
        "events": {"count": 1, "ids": ["ev-not-stored"]},
        "labels": {"count": 1, "ids": [ids["labels"][1]]},
        "reviews": {"count": 3, "ids": gone_reviews},
        "adjudications": {"count": 1, "ids": [ids["adjudication"]]}}
    assert any(m.startswith("3 of 12 reviews") and gone_reviews[0] in m
               for m in ds["missing"])
    assert alone["missing_links"]["reviews"] == {"count": 3, "ids": gone_reviews[:2]}
    text = render_tree(tree)
    for kind in ("events", "labels", "reviews", "adjudications"):
        assert text.count(f" {kind} the dataset refers to are not in this store") == 1, text
    assert "1 of 6 events the dataset refers to" in text
    # starting from the dataset (hilt lineage ID --dataset) lists them once too
    assert render_tree(alone).count("reviews the dataset refers to") == 1
    assert "1 of 1 adjudications" in text


def test_erased_events_are_counted(engine: Engine) -> None:
    ids = _dataset(engine)
    with transaction(engine) as s:
        s.execute(sa.update(EventRow).where(EventRow.id.in_(ids["events"][:2]))
                  .values(subject_id="s3"))
    with transaction(engine) as s:
        assert erase_subject(s, "s3", actor="t").events_erased == 2
    with transaction(engine) as s:
        tree = model_lineage(s, ids["model"])
    ds = tree["datasets"][0]
    assert ds["counts"]["events"] == 6
    assert ds["events_erased"] == 2
    assert "2 of 6 events were erased (hilt forget): their content is gone" in ds["missing"]
    assert "events were erased" in render_tree(tree)
