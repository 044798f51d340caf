"""Classifier thresholds and grouped validation; reward-evaluation ties, turn slices and
the comparison with a previous model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hilt.train import reward_refresh
from hilt.train.classifier import ClassifierConfig, choose_threshold, train_classifier
from hilt.train.classifier_eval import LabelledTexts
from hilt.train.classifier_refresh import refresh_classifier
from hilt.train.pairs import Pair, pair_key, pairs_hash, split_pairs
from hilt.train.reward_eval import _turns_slice, accuracy_block, evaluate_reward_model
from hilt.train.stacking import StackedHead


def _random_label_copies(n_texts: int, copies: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    words = ["apple", "river", "stone", "cloud", "lamp", "tiger", "glass", "paper", "wind"]
    texts, labels = [], []
    for i in range(n_texts):
        text = " ".join(rng.choice(words, 6)) + f" {i}"
        label = "yes" if rng.random() < 0.5 else "no"
        texts += [text] * copies
        labels += [label] * copies
    return texts, labels


# --- classifier thresholds -------------------------------------------------------------

def test_target_fpr_zero_is_reachable_above_the_highest_negative() -> None:
    proba = np.array([0.9, 0.8, 0.3, 0.2])
    positive = np.array([False, True, True, False])
    threshold = choose_threshold(proba, positive, target_fpr=0.0)
    assert threshold > 0.9
    assert not ((proba >= threshold) & ~positive).any()


# --- grouped out-of-fold validation ----------------------------------------------------

def test_stacked_head_inner_folds_keep_copies_together(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn import model_selection

    seen: list[tuple[np.ndarray, np.ndarray]] = []
    original = model_selection.cross_val_predict

    def spy(estimator: Any, X: Any, y: Any, **kwargs: Any) -> Any:
        cv, groups = kwargs["cv"], kwargs.get("groups")
        for train, test in cv.split(X, y, groups):
            seen.append((np.asarray(groups)[train], np.asarray(groups)[test]))
        return original(estimator, X, y, **kwargs)

    monkeypatch.setattr(model_selection, "cross_val_predict", spy)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 8))
    X = np.repeat(base, 4, axis=0)
    y = np.repeat(rng.integers(0, 2, 30), 4)
    groups = np.repeat(np.arange(30), 4)
    StackedHead(n_cheap=2, folds=5).fit(X, y, groups=groups)
    assert seen
    for train_groups, test_groups in seen:
        assert not set(train_groups.tolist()) & set(test_groups.tolist())


def test_copies_of_a_text_do_not_inflate_out_of_fold_accuracy(hash_encoder: None) -> None:
    texts, labels = _random_label_copies(60, 5)
    model = train_classifier(texts, labels, ClassifierConfig(threshold_rule="calibrated",
                                                             positive_label="yes"))
    v = model.validation
    assert v["n"] == 300 and v["n_distinct"] == 60
    assert v["accuracy"]["n"] == 60
    # labels are coin flips: with copies leaking across folds this was about 0.75
    assert v["accuracy"]["value"] < 0.68
    assert v["false_positive_rate"]["n"] + v["false_negative_rate"]["n"] == 60


def test_one_distinct_text_per_label_is_refused(hash_encoder: None) -> None:
    texts = ["same refusal"] * 3 + ["answer one", "answer two"]
    labels = ["yes"] * 3 + ["no", "no"]
    with pytest.raises(ValueError, match="2 distinct texts"):
        train_classifier(texts, labels, ClassifierConfig())


def test_manifest_accuracy_is_a_rate_object_with_and_without_held_out(
        hash_encoder: None, tmp_path: Path) -> None:
    texts, labels = _random_label_copies(20, 1)
    train = LabelledTexts(texts, labels)
    held = LabelledTexts(*_random_label_copies(8, 1, seed=1))
    common: dict[str, Any] = {"data_path": "x.jsonl", "data_hash": "h", "label_field": "label",
                              "fields": {"text": "text"}}
    plain = refresh_classifier(train, tmp_path / "a", ClassifierConfig(), **common)
    with_held = refresh_classifier(train, tmp_path / "b", ClassifierConfig(), held_out=held,
                                   **common)
    for manifest in (plain, with_held):
        acc = manifest["metrics"]["accuracy"]
        assert set(acc) == {"value", "successes", "n", "ci_low", "ci_high"}
        assert acc["ci_low"] <= acc["value"] <= acc["ci_high"]
        assert acc["successes"] == pytest.approx(acc["value"] * acc["n"])
    assert with_held["metrics"]["accuracy"]["n"] == 8
    assert with_held["metrics"]["accuracy"]["value"] == \
        with_held["metrics"]["held_out"]["accuracy"]


# --- reward evaluation -----------------------------------------------------------------

class _LengthScorer:
    """Reward = number of characters, plus a tiny batch-dependent offset like padding."""

    def __init__(self, jitter: float = 5e-7) -> None:
        self.jitter = jitter
        self.calls = 0

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        self.calls += 1
        sign = 1.0 if self.calls % 2 else -1.0
        return np.array([float(len(r)) + sign * self.jitter for r in responses])


def test_half_ties_give_a_fractional_count_and_its_wilson_interval() -> None:
    from hilt.evals.stats import wilson_interval

    delta = np.array([1.0] * 21 + [0.0] + [-1.0] * 18)
    block = accuracy_block(delta)
    assert block["successes"] == 21.5 and block["value"] == pytest.approx(21.5 / 40)
    low, high = wilson_interval(21.5, 40)
    assert (block["ci_low"], block["ci_high"]) == pytest.approx((low, high))


def test_identical_replies_and_padding_noise_are_ties() -> None:
    pairs = [Pair(prompt="p", chosen="same", rejected="same") for _ in range(10)]
    pairs += [Pair(prompt="p", chosen="a longer reply", rejected="short") for _ in range(10)]
    report = evaluate_reward_model(_LengthScorer(), pairs, probes=False)
    assert report["accuracy"] == pytest.approx(15 / 20)
    # tiny differences below the tolerance are ties as well
    assert accuracy_block(np.array([4e-7, -4e-7]))["value"] == 0.5


def test_turns_slice_counts_a_leading_human_turn_without_line_breaks() -> None:
    conversation = "Human: hi\n\nAssistant: hello\n\nHuman: and now?\n\nAssistant:"
    assert _turns_slice(conversation) == _turns_slice("\n\n" + conversation) == "turns:2-3"
    assert _turns_slice("Human: one question?\n\nAssistant:") == "turns:1"


def _pairs(n: int, offset: int = 0) -> list[Pair]:
    return [Pair(prompt=f"q{i}", chosen="a much longer reply " * (1 + i % 3),
                 rejected=f"no {i}") for i in range(offset, offset + n)]


def _write_previous(folder: Path, data: Path, pairs: list[Pair]) -> None:
    data.write_text("".join(json.dumps(p.as_dict()) + "\n" for p in pairs))
    train, held = split_pairs(pairs, 0.2, 0)
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({
        "kind": "reward", "data": {"path": str(data), "hash": pairs_hash(pairs)},
        "split": {"held_out_fraction": 0.2, "split_seed": 0, "train_hash": pairs_hash(train),
                  "held_out_hash": pairs_hash(held)}}))


def test_previous_training_pairs_are_recovered_from_the_manifest(tmp_path: Path) -> None:
    pairs = _pairs(30)
    _write_previous(tmp_path / "prev", tmp_path / "prev.jsonl", pairs)
    keys = reward_refresh.previous_training_keys(tmp_path / "prev")
    assert keys == {pair_key(p) for p in split_pairs(pairs, 0.2, 0)[0]}
    # a data file changed since: the recorded hash no longer matches
    (tmp_path / "prev.jsonl").write_text(json.dumps(_pairs(1)[0].as_dict()) + "\n")
    assert reward_refresh.previous_training_keys(tmp_path / "prev") is None


def test_previous_model_is_compared_only_on_pairs_it_did_not_train_on() -> None:
    held = _pairs(10)
    trained_on = {pair_key(p) for p in held[:6]}

    class Memoriser:
        """Right on the pairs it trained on, wrong on the others."""

        def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
            seen = {p for p, _, _ in trained_on}
            return np.array([(1.0 if p in seen else -1.0) * len(r)
                             for p, r in zip(prompts, responses, strict=True)])

    report = evaluate_reward_model(_LengthScorer(0.0), held, previous=Memoriser(),
                                   probes=False, previous_train_keys=trained_on)
    agreement = report["agreement_with_previous"]
    assert agreement["previous_overlap"] == "known"
    assert agreement["previous_held_out_in_train"] == 6 and agreement["n"] == 4
    assert agreement["previous_accuracy"] == 0.0
    assert agreement["same_preference"]["n"] == 4
    unknown = evaluate_reward_model(_LengthScorer(0.0), held, previous=Memoriser(),
                                    probes=False)["agreement_with_previous"]
    assert unknown["previous_overlap"] == "unknown"
    assert unknown["previous_held_out_in_train"] is None and unknown["n"] == 10


class _Memoriser:
    """Right on the prompts it trained on, wrong on the others."""

    def __init__(self, trained_on: set[tuple[str, str, str]]) -> None:
        self.seen = {p for p, _, _ in trained_on}

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return np.array([(1.0 if p in self.seen else -1.0) * len(r)
                         for p, r in zip(prompts, responses, strict=True)])


def test_accuracy_on_pairs_the_model_did_not_train_on_is_reported_apart() -> None:
    held = _pairs(10)
    trained_on = {pair_key(p) for p in held[:6]}
    report = evaluate_reward_model(_Memoriser(trained_on), held, probes=False,
                                   train_keys=trained_on)
    assert report["accuracy"] == pytest.approx(0.6)
    overlap = report["training_overlap"]
    assert overlap["overlap"] == "known" and overlap["in_train"] == 6
    unseen = overlap["unseen"]
    assert unseen["n"] == 4 and unseen["accuracy"] == 0.0
    assert unseen["accuracy_ci"]["low"] == 0.0 < unseen["accuracy_ci"]["high"] < 1.0
    unknown = evaluate_reward_model(_Memoriser(trained_on), held, probes=False)
    assert unknown["training_overlap"] == {"overlap": "unknown", "in_train": None,
                                           "unseen": None}


def test_eval_reward_recovers_the_models_own_training_pairs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hilt.cli import app

    pairs = _pairs(30)
    _write_previous(tmp_path / "rm", tmp_path / "data.jsonl", pairs)
    trained_on = {pair_key(p) for p in split_pairs(pairs, 0.2, 0)[0]}
    monkeypatch.setattr(reward_refresh, "check_reward_folder", lambda *a, **k: "minilm-bt")
    monkeypatch.setattr(reward_refresh, "load_reward_model",
                        lambda *a, **k: _Memoriser(trained_on))
    done = CliRunner().invoke(app, ["eval", "reward", "--model", str(tmp_path / "rm"),
                                    "--pairs", str(tmp_path / "data.jsonl"), "--no-probes"])
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["accuracy"] == pytest.approx(len(trained_on) / 30)
    assert report["training_overlap"]["in_train"] == len(trained_on)
    assert report["training_overlap"]["unseen"]["accuracy"] == 0.0


def test_linear_head_trains_on_many_copies_of_one_text(hash_encoder: None) -> None:
    # 20 distinct comply texts; 22 refuse rows, 20 of them copies of one text: a grouped
    # training fold that holds the copies out keeps only two refuse rows
    texts = [f"here is answer number {i}" for i in range(20)]
    texts += ["I can't help with that."] * 20 + ["I won't do that.", "No, sorry."]
    labels = ["comply"] * 20 + ["refuse"] * 22
    model = train_classifier(texts, labels, ClassifierConfig(head="linear",
                                                             positive_label="refuse"))
    assert model.validation["accuracy"]["n"] == 23  # distinct rows
    proba = model.predict_proba(["I can't help with that."])
    np.testing.assert_allclose(proba.sum(1), 1.0)


@pytest.mark.parametrize("head", ["stacked", "linear"])
def test_a_label_with_two_texts_trains(hash_encoder: None, head: str) -> None:
    # Two refusals among 37 answers: the out-of-fold split (2 folds) leaves one refusal
    # in each training fold, where no inner split can train on it and score it too
    texts = [f"here is answer number {i} about topic {7 * i}" for i in range(37)]
    texts += ["Sorry, I won't provide that information.", "I can't help with that."]
    labels = ["comply"] * 37 + ["refuse"] * 2
    model = train_classifier(texts, labels, ClassifierConfig(head=head,
                                                             positive_label="refuse"))
    assert model.validation["folds"] == 2
    assert model.validation["accuracy"]["n"] == 39
    np.testing.assert_allclose(model.predict_proba(texts[:3]).sum(1), 1.0)
