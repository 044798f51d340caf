"""One field named for two roles (``--text-field text --context-field text``, or the
label as the text) is refused naming the second option, before anything is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hilt.errors import InputError
from hilt.train.classifier_eval import read_labelled


@pytest.mark.parametrize(("fields", "option"), [
    (("text", "label", "text", None), "--context-field"),
    (("text", "text", None, None), "--label-field"),
    (("text", "label", "prompt", "prompt"), "--harmful-field"),
])
def test_one_field_in_two_roles_is_refused(tmp_path: Path, fields: tuple[str | None, ...],
                                           option: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "t", "label": "a", "prompt": "p"}) + "\n")
    text, label, context, harmful = fields
    with pytest.raises(InputError) as caught:
        read_labelled(path, text, label, context, harmful)  # type: ignore[arg-type]
    assert (caught.value.file, caught.value.field) == (str(path), option)
    assert "each role needs a field of its own" in caught.value.reason


def test_distinct_fields_read(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "t", "label": "a", "prompt": "p"}) + "\n")
    rows = read_labelled(path, "text", "label", "prompt")
    assert (rows.texts, rows.labels, rows.contexts) == (["t"], ["a"], ["p"])
