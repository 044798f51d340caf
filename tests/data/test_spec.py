from pathlib import Path

import pytest

from hilt.data.spec import load_spec, parse_spec
from hilt.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "selection"


def _bad(tmp_path: Path, text: str) -> InputError:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert info.value.file == str(path)
    return info.value


def test_bad_threshold_names_field_and_line(tmp_path: Path) -> None:
    err = _bad(tmp_path, "name: x\nkind: preference\ndedup:\n  threshold: 1.5\n")
    assert err.field == "dedup.threshold"
    assert err.line == 4


def test_unknown_key_is_named(tmp_path: Path) -> None:
    err = _bad(tmp_path, "name: x\nkind: sft\nlabels:\n  min_confidnce: 0.5\n")
    assert err.field == "labels.min_confidnce"
    assert err.line == 4


def test_train_consent_cannot_be_dropped(tmp_path: Path) -> None:
    err = _bad(tmp_path, "name: x\nkind: sft\nconsent:\n  required_scopes: [review]\n")
    assert err.field == "consent.required_scopes"
    assert "train" in err.reason


def test_wrong_kind_and_source(tmp_path: Path) -> None:
    assert _bad(tmp_path, "name: x\nkind: rlhf\n").field == "kind"
    err = _bad(tmp_path, "name: x\nkind: classification\nsources: [label_ranking]\n")
    assert err.field == "sources"


def test_unknown_provenance_and_not_yaml(tmp_path: Path) -> None:
    err = _bad(tmp_path, "name: x\nkind: sft\nlabels:\n  provenance: [vibes]\n")
    assert err.field == "labels.provenance"
    assert _bad(tmp_path, "name: [x\n").line is not None


def test_decontamination_cannot_be_disabled() -> None:
    with pytest.raises(InputError) as info:
        parse_spec({"name": "x", "kind": "sft", "decontamination": {"enabled": False}})
    assert info.value.field == "decontamination.enabled"


def test_example_specs_load() -> None:
    specs = sorted(EXAMPLES.glob("*.yaml"))
    assert len(specs) >= 3
    kinds = {load_spec(p).kind for p in specs}
    assert kinds == {"preference", "sft", "classification"}
