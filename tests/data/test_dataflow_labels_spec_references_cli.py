"""``hilt dataset build`` checks a spec against the published rubrics before selecting:
a ``label_map`` key that no selected question gives, or a rubric version with nothing
published, exits 2 naming the spec file, line and field, and records no version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hilt.data.versions import list_versions
from hilt.review.rubrics import load_rubric_file, publish_rubric
from hilt.store.db import transaction

REPO = Path(__file__).resolve().parents[2]
SPEC = """name: refusal
kind: classification
labels:
  rubric_ids: [harm]
  rubric_versions: [1]
classification:
  question_id: refusal
  text: response
  label_map:
    full_refusal: refuse
    complies: comply
"""


def _build(db_url: str, spec: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hilt", "dataset", "build", str(spec),
                           "--db", db_url, "--data-dir", str(tmp_path / "ds")],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "HILT_HOME": str(tmp_path / "home")})


@pytest.mark.parametrize("old, new, where, words", [
    ("    complies: comply", "    complys: comply",
     "line 11, field 'classification.label_map.complys'",
     "'complys' is no label of question 'refusal'"),
    ("rubric_versions: [1]", "rubric_versions: [1, 99]",
     "line 5, field 'labels.rubric_versions.1'",
     "no version 99 of 'harm' is published (published: 1)"),
])
def test_cli_build_refuses_what_the_published_rubrics_do_not_have(
        db_url: str, engine: Engine, tmp_path: Path, old: str, new: str, where: str,
        words: str) -> None:
    with transaction(engine) as session:
        publish_rubric(session, load_rubric_file(REPO / "examples" / "rubrics" / "harm.yaml"),
                       actor="lead")
    good, bad = tmp_path / "good.yaml", tmp_path / "typo.yaml"
    good.write_text(SPEC)
    bad.write_text(SPEC.replace(old, new))
    refused = _build(db_url, bad, tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert f"error: {bad}, {where}: {words}" in refused.stderr
    # The spec as it should be passes the check; with no labels in the store it is then
    # refused for selecting nothing, which names no field of the rubric check.
    plain = _build(db_url, good, tmp_path)
    assert plain.returncode == 2 and "yields no records" in plain.stderr, plain.stderr
    assert "label_map" not in plain.stderr and "published" not in plain.stderr
    with transaction(engine) as session:
        assert list_versions(session) == []
