"""Triage settings and YAML documents: a bad value is named with its line as well as its
field, and a byte that is not UTF-8 with the line it is on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError
from hilt.review.escalation import load_rule_file
from hilt.review.rubrics import load_rubric_file
from hilt.review.yamlio import load_yaml


def _triage_error(tmp_path: Path, config: Path) -> InputError:
    result = CliRunner().invoke(app, ["queue", "triage", "--config", str(config),
                                      "--db", f"sqlite:///{tmp_path / 'h.db'}"])
    assert isinstance(result.exception, InputError), result.output
    return result.exception


@pytest.mark.parametrize(("text", "line", "field"), [
    ('w_severity: 1\n\nw_sla: "4"\n', 3, "w_sla"),
    ("w_sla: 1\nsla_tau_hours: 0\n", 2, "sla_tau_hours"),
    ("# weights\ndup_threshold: 1.5\n", 2, "dup_threshold"),
    ("w_reach: 1\nnum_perm: 1\n", 2, "num_perm"),
    ("w_reach: 1\nspeed: 3\n", 2, "speed"),
    ("w_uncertainty: .nan\n", 1, "w_uncertainty"),
])
def test_badinput_review_triage_setting_errors_name_the_line(
        tmp_path: Path, text: str, line: int, field: str) -> None:
    config = tmp_path / "triage.yaml"
    config.write_text(text)
    exc = _triage_error(tmp_path, config)
    assert (exc.file, exc.line, exc.field) == (str(config), line, field)


def test_badinput_review_triage_settings_not_utf8_name_the_line(tmp_path: Path) -> None:
    config = tmp_path / "triage.yaml"
    config.write_bytes(b"w_sla: 1\nw_reach: 2\n# caf\xe9\n")
    exc = _triage_error(tmp_path, config)
    assert (exc.file, exc.line, exc.reason) == (str(config), 3, "not UTF-8 text")
    assert str(exc) == f"{config}, line 3: not UTF-8 text"


@pytest.mark.parametrize("loader", [load_yaml, load_rubric_file, load_rule_file])
def test_badinput_review_yaml_not_utf8_names_the_line(
        tmp_path: Path, loader: Callable[[Path], object]) -> None:
    path = tmp_path / "doc.yaml"
    path.write_bytes(b"id: x\ntitle: t\n# na\xefve\nrules: []\n")
    with pytest.raises(InputError) as err:
        loader(path)
    assert (err.value.file, err.value.line, err.value.reason) == \
        (str(path), 3, "not UTF-8 text")
