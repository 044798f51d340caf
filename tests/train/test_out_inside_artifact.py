"""``--out`` inside a model folder or a dataset version's folder is refused (exit 2,
naming ``--out``, nothing written): the new model would change the files the enclosing
model is registered with (``hilt models verify`` then reports them), and the next run
into the enclosing folder would replace it, the nested model with it. A dataset
version's folder, whose ``manifest.json`` also has a ``kind`` (``sft`` among them), is
never a model folder to replace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.train.out_folder import check_out_folder, enclosing_artifact
from tests.ops.climain import run_hilt


def _model(path: Path, kind: str) -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"kind": kind, "base_model": "m"}))
    (path / "weights.bin").write_text("w")
    return path


def _dataset_version(path: Path, kind: str = "sft") -> Path:
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"version_id": path.name, "kind": kind,
                                                    "record_count": 1}))
    (path / "records.jsonl").write_text("{}\n")
    return path


@pytest.mark.parametrize("below", ["inner", "a/b"])
@pytest.mark.parametrize("kind", ["reward", "classifier", "sft"])
def test_out_inside_a_model_folder_is_refused(tmp_path: Path, kind: str,
                                              below: str) -> None:
    outer = _model(tmp_path / "outer", kind)
    with pytest.raises(InputError) as err:
        check_out_folder(outer / below, "reward")
    assert err.value.field == "--out"
    assert f"inside the {kind} model folder {outer}" in err.value.reason
    assert sorted(p.name for p in outer.iterdir()) == ["manifest.json", "weights.bin"]


def test_out_inside_a_dataset_version_is_refused(tmp_path: Path) -> None:
    version = _dataset_version(tmp_path / "datasets" / ("ab" * 32))
    with pytest.raises(InputError) as err:
        check_out_folder(version / "m", "sft")
    assert "dataset version" in err.value.reason


def test_a_dataset_version_of_the_same_kind_is_not_replaced(tmp_path: Path) -> None:
    version = _dataset_version(tmp_path / ("cd" * 32), kind="sft")
    with pytest.raises(InputError) as err:
        check_out_folder(version, "sft")
    assert err.value.field == "--out" and "dataset version" in err.value.reason


def test_beside_a_model_folder_and_a_model_folder_itself_are_accepted(tmp_path: Path
                                                                     ) -> None:
    model = _model(tmp_path / "rm", "reward")
    check_out_folder(tmp_path / "rm2", "reward")  # beside it
    check_out_folder(model, "reward")  # the folder itself, replaced as a whole
    # a folder that merely holds some other manifest.json is no model folder
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "manifest.json").write_text(json.dumps({"kind": "notes"}))
    assert enclosing_artifact((tmp_path / "notes" / "m").resolve()) is None


def test_cli_refuses_before_training(tmp_path: Path) -> None:
    outer = _model(tmp_path / "clf", "classifier")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    done = run_hilt(["train", "sft", "--data", str(data), "--out", str(outer / "sft"),
                     "--no-register", "--no-progress"])
    assert done.returncode == 2, done.stderr
    assert "field '--out'" in done.stderr and "classifier model folder" in done.stderr
    assert sorted(p.name for p in outer.iterdir()) == ["manifest.json", "weights.bin"]
