"""Gate policy numbers must be numbers (no YAML booleans, no text, nothing infinite or
NaN) and its switches booleans, refused with file, line and field; ``gate signoff
--out`` naming a folder is refused before any sign-off is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from hilt.access import add_reviewer
from hilt.cli import app
from hilt.errors import InputError
from hilt.gate.policy import default_policy, load_policy
from hilt.store.db import transaction
from hilt.store.tables.gate import GateSignoffRow
from tests.gate.tiny_check import stored_tiny_decision


def _policy_file(tmp_path: Path, old: str, new: str) -> Path:
    text = yaml.safe_dump(default_policy().as_dict(), sort_keys=False)
    assert old in text
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("value, words", [
    ("yes", "not a boolean"), ("true", "not a boolean"), ('"0.02"', "not text"),
    (".nan", "finite"), (".inf", "finite"), ("-.inf", "finite"), ("1e999", "finite"),
])
def test_a_criterion_limit_must_be_a_finite_number(tmp_path: Path, value: str,
                                                   words: str) -> None:
    path = _policy_file(tmp_path, "max: 0.02", f"max: {value}")
    line = path.read_text().splitlines().index(f"    max: {value}") + 1
    with pytest.raises(InputError, match=words) as err:
        load_policy(path)
    assert (err.value.file, err.value.line, err.value.field) == (
        str(path), line, "behaviours.0.criteria.1.max")


def test_an_exponent_yaml_reads_as_text_is_the_number(tmp_path: Path) -> None:
    path = _policy_file(tmp_path, "max: 0.02", "max: 2e-2")
    assert load_policy(path).behaviours[0].criteria[1].max == 0.02


@pytest.mark.parametrize("old, new, field", [
    ("alpha: 0.05", "alpha: .nan", "alpha"),
    ("signoffs: []", "signoffs: [{role: owner, count: yes}]", "signoffs.0.count"),
    ("signoffs: []", "signoffs: [{role: owner, count: '2'}]", "signoffs.0.count"),
    ("block_on_unanswered: false", "block_on_unanswered: 'no'",
     "contract_card.block_on_unanswered"),
])
def test_other_numbers_and_switches_keep_their_types(tmp_path: Path, old: str, new: str,
                                                     field: str) -> None:
    with pytest.raises(InputError) as err:
        load_policy(_policy_file(tmp_path, old, new))
    assert err.value.field == field and err.value.line is not None


def test_signoff_out_naming_a_folder_stores_nothing(engine: Engine, db_url: str,
                                                    tmp_path: Path) -> None:
    decision = stored_tiny_decision(engine, tmp_path, [{"role": "release_owner"}])
    with transaction(engine) as s:
        add_reviewer(s, reviewer_id="ana", role="lead", may_sign=["release_owner"])
    folder = tmp_path / "sdir"
    folder.mkdir()
    result = CliRunner().invoke(app, ["gate", "signoff", decision, "--role",
                                      "release_owner", "--by", "ana", "--out", str(folder),
                                      "--db", db_url])
    assert isinstance(result.exception, InputError), result.output
    assert result.exception.field == "--out" and "is a folder" in str(result.exception)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(GateSignoffRow)
                            ).scalar_one() == 0
    assert list(folder.iterdir()) == []
