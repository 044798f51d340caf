"""Settings files refuse a repeated key (plain YAML keeps the last value silently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.cli.drift import load_config
from hilt.cli.quality import _settings
from hilt.errors import InputError


@pytest.mark.parametrize(("loader", "text", "line"), [
    (load_config, "window_hours: 24\nwindow_hours: 1\n", 2),
    (_settings, "aggregation:\n  max_iter: 50\naggregation:\n  tol: 0.001\n", 3),
])
def test_a_repeated_key_is_an_input_error_with_its_line(tmp_path: Path, loader: object,
                                                        text: str, line: int) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        loader(path)  # type: ignore[operator]
    assert err.value.file == str(path) and err.value.line == line
    assert "repeats (first at line 1)" in err.value.reason
