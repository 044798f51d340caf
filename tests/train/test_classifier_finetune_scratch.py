"""A classifier trained with a fine-tuned encoder and no work folder keeps the encoder in
a temporary folder only as long as it needs it: removed once the classifier is gone, or
at once when training fails."""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import pytest

from hilt.train.classifier import ClassifierConfig, TrainingInputError, train_classifier

REFUSALS = [f"I can't help with {t}." for t in ("that", "this", "it", "theft", "fraud", "harm")]
ANSWERS = [f"Sure, here is how to {t}." for t in ("bake", "knit", "swim", "cook", "draw",
                                                   "sing")]
CONFIG = ClassifierConfig(finetune_epochs=1, max_length=16, folds=2)


def _scratch(root: Path) -> list[Path]:
    return sorted(root.glob("hilt-encoder-*"))


def test_the_scratch_encoder_lives_as_long_as_the_classifier(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    clf = train_classifier(REFUSALS + ANSWERS, ["refuse"] * 6 + ["comply"] * 6, CONFIG)
    [folder] = _scratch(tmp_path)
    assert clf.encoder_path is not None and Path(clf.encoder_path).parent == folder
    assert clf.predict(["I can't help with knives."]) in (["refuse"], ["comply"])
    saved = tmp_path / "model"
    clf.save(saved)
    del clf
    gc.collect()
    assert _scratch(tmp_path) == []
    assert (saved / "encoder").is_dir()  # the saved model keeps its own copy


def test_a_failed_training_leaves_no_scratch_encoder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(TrainingInputError, match="two distinct labels"):
        train_classifier(REFUSALS, ["refuse"] * 6, CONFIG)
    assert _scratch(tmp_path) == []
