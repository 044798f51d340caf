"""``--reliability`` of ``hilt eval reward|classifier``: the diagram is a PNG written
exactly where named. A name without ``.png`` is refused before any work (matplotlib
would write ``NAME.png`` for a name without a suffix, and stop with a traceback after
the whole evaluation for a suffix it does not know), and the file appears whole or not
at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.train.stats import plot_reliability, reliability_bins
from tests.ops.climain import run_hilt

BINS = reliability_bins([0.1, 0.4, 0.8, 0.9], [0, 1, 1, 1])


def _reward_folder(path: Path) -> Path:
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps({"kind": "reward"}))
    for name in ("reward_config.json", "reward_head.pt"):
        (path / name).write_text("{}")
    return path


@pytest.mark.parametrize("name", ["diagram", "diagram.txt", "diagram.svg"])
def test_eval_reward_refuses_a_name_that_is_not_png(tmp_path: Path, name: str) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    done = run_hilt(["eval", "reward", "--model", str(_reward_folder(tmp_path / "rm")),
                     "--pairs", str(pairs), "--reliability", str(tmp_path / name),
                     "--no-probes", "--no-progress"])
    assert done.returncode == 2, done.stderr
    assert "field '--reliability'" in done.stderr and ".png" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl", "rm"]


def test_eval_classifier_refuses_a_name_that_is_not_png(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"text": "t", "label": "x"}) + "\n")
    # the option is checked before the model folder is read
    done = run_hilt(["eval", "classifier", "--model", str(tmp_path / "clf"), "--data",
                     str(data), "--text-field", "text", "--label-field", "label",
                     "--reliability", str(tmp_path / "diagram"), "--no-progress"])
    assert done.returncode == 2, done.stderr
    assert "field '--reliability'" in done.stderr and ".png" in done.stderr


def test_the_png_is_written_under_the_name_given_and_whole(tmp_path: Path) -> None:
    target = tmp_path / "Diagram.PNG"
    plot_reliability(BINS, str(target), "t")
    assert target.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # nothing beside it


def test_a_name_without_suffix_is_not_changed_by_the_plot(tmp_path: Path) -> None:
    # what the refresh and the CLI rely on: the file is the one named, not NAME.png
    plot_reliability(BINS, str(tmp_path / "diagram"), "t")
    assert [p.name for p in tmp_path.iterdir()] == ["diagram"]
