"""`hilt lineage` as text shows the model's headline accuracy with its interval and n
and what it rests on, or says that it has none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.quality.drift.lineage import render_tree
from hilt.train.registry import headline_accuracy


def _model(kind: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """A model entry as model_lineage gives it (version_as_dict of a registered row)."""
    return {"id": f"{kind}-0123456789abcdef", "kind": kind, "name": kind,
            "base_model": "all-MiniLM-L6-v2", **headline_accuracy(metrics)}


def _model_line(model: dict[str, Any]) -> str:
    text = render_tree({"model": model, "datasets": [], "missing": [],
                        "previous_versions": []})
    return text.splitlines()[0]


def test_reward_model_line_carries_accuracy_interval_and_n() -> None:
    metrics = {"n": 40, "accuracy": 0.575,
               "accuracy_ci": {"method": "wilson", "low": 0.4219, "high": 0.7152, "n": 40}}
    line = _model_line(_model("reward", metrics))
    assert line.startswith("model reward-0123456789abcdef")
    assert "accuracy 0.575" in line and "0.422" in line and "0.715" in line
    assert "n=40" in line


def test_classifier_rate_object_is_shown_the_same_way() -> None:
    metrics = {"accuracy": {"value": 0.9, "n": 450, "successes": 405, "ci_low": 0.869,
                            "ci_high": 0.924}}
    line = _model_line(_model("classifier", metrics))
    assert "accuracy 0.900" in line and "[0.869, 0.924]" in line and "n=450" in line


def test_a_model_without_accuracy_says_so() -> None:
    line = _model_line(_model("sft", {"train_loss": 2.3}))
    assert "no headline accuracy" in line
    assert "accuracy 0" not in line


def test_lineage_says_what_the_accuracy_rests_on(engine: Engine, tmp_path: Path) -> None:
    from hilt.quality.drift.lineage import model_lineage
    from hilt.store.db import transaction
    from hilt.train.registry import register_model_version

    # a classifier without a validation split: its accuracy is out of fold
    manifest = {"kind": "classifier", "base_model": "all-MiniLM-L6-v2",
                "data": {"hash": "ab" * 32}, "config": {}, "seed": 0,
                "code_version": "hilt 0.1.0",
                "metrics": {"accuracy": {"value": 0.9, "n": 450, "successes": 405,
                                         "ci_low": 0.869, "ci_high": 0.924}}}
    with transaction(engine) as session:
        version = register_model_version(session, manifest=manifest,
                                         artifact_path=str(tmp_path / "m")).id
    with transaction(engine) as session:
        tree = model_lineage(session, version)
    assert tree["model"]["accuracy_basis"] == "out_of_fold"
    assert render_tree(tree).splitlines()[0].endswith("n=450, out of fold)")
