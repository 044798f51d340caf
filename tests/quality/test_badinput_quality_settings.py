"""The quality and drift settings files name the line of a bad value, an unknown key and
a byte that is not UTF-8, besides the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.cli.drift import load_config
from hilt.cli.quality import _settings
from hilt.errors import InputError


def _error(loader: object, path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        loader(path)  # type: ignore[operator]
    return caught.value


@pytest.mark.parametrize(("text", "line", "field"), [
    ('aggregation:\n  max_iter: 5\n\ncalibration:\n  window: "abc"\n', 5,
     "calibration.window"),
    ("calibration:\n  window: 10\n  cusum:\n    threshold: x\n", 4,
     "calibration.cusum.threshold"),
    ("aggregation:\n  max_iter: 5\n  min_confidense: 0.6\n", 3,
     "aggregation.min_confidense"),
    ("calibration:\n  window: 10\n\naggregation: fast\n", 4, "aggregation"),
    ("aggregation:\n  tol: 0.001\ncalibrations:\n  window: 3\n", 3, "calibrations"),
])
def test_badinput_quality_settings_errors_name_the_line(
        tmp_path: Path, text: str, line: int, field: str) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(text)
    error = _error(_settings, path)
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert str(error).startswith(f"{path}, line {line}, field '{field}': ")


@pytest.mark.parametrize(("text", "line", "field"), [
    ('lookback_windows: 3\n\nwindow_hours: "24"\n', 3, "window_hours"),
    ("window_hours: 24\nenabled: [label_shift, nope]\n", 2, "enabled"),
    ("window_hours: 24\nenabled: label_shift\n", 2, "enabled"),
    ("window_hours: 24\nbogus: 1\n", 2, "bogus"),
    ("window_hours: 8000\nhistory_windows: 200\n", 2, "history_windows"),
    ('{"window_hours": 24,\n "min_window_n": "x"}\n', 2, "min_window_n"),
])
def test_badinput_quality_drift_config_errors_name_the_line(
        tmp_path: Path, text: str, line: int, field: str) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(text)
    error = _error(load_config, path)
    assert (error.file, error.line, error.field) == (str(path), line, field)


@pytest.mark.parametrize("loader", [_settings, load_config])
def test_badinput_quality_settings_byte_that_is_not_utf8_names_its_line(
        tmp_path: Path, loader: object) -> None:
    path = tmp_path / "settings.yaml"
    # A byte-order mark first does not shift the line.
    path.write_bytes(b"\xef\xbb\xbf# settings\n# caf\xe9 \n")
    error = _error(loader, path)
    assert str(error) == f"{path}, line 2: not UTF-8 text"


@pytest.mark.parametrize("loader", [_settings, load_config])
def test_badinput_quality_settings_that_do_not_parse_name_the_line(
        tmp_path: Path, loader: object) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("# settings\nx: [1\n")
    error = _error(loader, path)
    assert error.file == str(path) and error.line == 3 and "not valid YAML" in error.reason


@pytest.mark.parametrize("loader", [_settings, load_config])
def test_badinput_quality_settings_file_that_is_missing_names_it(
        tmp_path: Path, loader: object) -> None:
    path = tmp_path / "nosuch.yaml"
    error = _error(loader, path)
    assert error.file == str(path) and "cannot read" in error.reason


def test_badinput_quality_settings_that_are_valid_or_empty_still_load(tmp_path: Path) -> None:
    quality = tmp_path / "q.yaml"
    quality.write_bytes(b"\xef\xbb\xbfcalibration:\n  window: 10\n")
    assert _settings(quality)[1].window == 10
    drift = tmp_path / "drift.yaml"
    drift.write_text("")
    assert load_config(drift).window_hours == 24.0
