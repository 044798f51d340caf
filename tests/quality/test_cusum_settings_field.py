"""A CUSUM setting out of range is reported on the line and under the name of the value
that was written, not under a neighbour the file does not hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.cli.quality import _settings
from hilt.errors import InputError
from hilt.quality.trend import CusumConfig


@pytest.mark.parametrize(("text", "line", "field", "reason"), [
    ("calibration:\n  cusum:\n    target_accuracy: 1.0\n", 3,
     "calibration.cusum.target_accuracy", "must lie in (0, 1), not 1.0"),
    ("calibration:\n  cusum:\n    target_accuracy: 0.6\n", 3,
     "calibration.cusum.target_accuracy", "must be above alarm_accuracy (0.7), not 0.6"),
    ("calibration:\n  cusum:\n    threshold: 4\n    alarm_accuracy: 0\n", 4,
     "calibration.cusum.alarm_accuracy", "must lie in (0, 1), not 0"),
    ("calibration:\n  cusum:\n    alarm_accuracy: 0.95\n", 3,
     "calibration.cusum.alarm_accuracy", "must be below target_accuracy (0.9), not 0.95"),
    ("calibration:\n  cusum:\n    target_accuracy: 0.5\n    alarm_accuracy: 0.8\n", 4,
     "calibration.cusum.alarm_accuracy", "must be below target_accuracy (0.5), not 0.8"),
])
def test_cusum_accuracy_error_names_the_line_written(
        tmp_path: Path, text: str, line: int, field: str, reason: str) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        _settings(path)
    assert (caught.value.file, caught.value.line, caught.value.field) == (
        str(path), line, field)
    assert str(caught.value) == f"{path}, line {line}, field '{field}': {reason}"


def test_cusum_config_still_refuses_equal_accuracies() -> None:
    with pytest.raises(ValueError, match="alarm_accuracy must be below"):
        CusumConfig(target_accuracy=0.8, alarm_accuracy=0.8)
