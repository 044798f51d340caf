"""Calibration and aggregation settings are checked for type and range, and every error
names the setting; the Wilson interval refuses confidence levels it cannot honour."""

from __future__ import annotations

import json
import math

import pytest

from hilt.errors import InputError
from hilt.quality.calibration import CalibrationConfig, wilson_interval
from hilt.quality.model_aggregator import ModelAggregationConfig
from hilt.quality.store import settings_from_dict
from hilt.quality.trend import CusumConfig


@pytest.mark.parametrize("confidence", [1.0, 0.0, -0.1, 1.5, math.nan, True])
def test_wilson_interval_needs_a_confidence_strictly_inside_0_1(confidence: float) -> None:
    # 1.0 gave NaN bounds, 0.0 an interval of no width and -0.1 an inverted one.
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(3, 7, confidence)


def test_wilson_interval_still_works_inside_the_range() -> None:
    low, high = wilson_interval(3, 7, 0.99)
    assert 0 < float(low) < 3 / 7 < float(high) < 1


@pytest.mark.parametrize(("setting", "value"), [
    ("calibration_set_size", 2.5), ("calibration_set_size", True),
    ("calibration_set_size", "10"), ("window", 2.5), ("min_window_answers", 0),
    ("probation_length", 0), ("max_calibration_attempts", 1.0),
    ("calibration_pass_accuracy", math.nan), ("probation_accuracy", 1.5),
    ("recovery_accuracy", "high"), ("confidence", 1.0), ("confidence", 0.0),
    ("confidence", 0), ("cusum", {"threshold": 4}),
])
def test_calibration_config_refuses_bad_values(setting: str, value: object) -> None:
    with pytest.raises(ValueError) as caught:
        CalibrationConfig(**{setting: value})  # type: ignore[arg-type]
    assert getattr(caught.value, "field", None) == setting


@pytest.mark.parametrize(("setting", "value"), [
    ("min_reviewer_answers", 2.5), ("min_reviewer_answers", -1),
    ("min_confidence", "0.8"), ("reopen_low_confidence", "no"),
    ("reopen_low_confidence", 0), ("max_iter", -5), ("max_iter", 10.0),
    ("tol", "abc"), ("tol", math.inf), ("correct_pseudocount", -1),
    ("error_pseudocount", math.nan), ("prior_pseudocount", None),
])
def test_aggregation_config_refuses_bad_values(setting: str, value: object) -> None:
    with pytest.raises(ValueError) as caught:
        ModelAggregationConfig(**{setting: value})  # type: ignore[arg-type]
    assert getattr(caught.value, "field", None) == setting


def test_cusum_config_refuses_non_numbers() -> None:
    with pytest.raises(ValueError) as caught:
        CusumConfig(threshold="5")  # type: ignore[arg-type]
    assert getattr(caught.value, "field", None) == "threshold"


@pytest.mark.parametrize(("data", "field"), [
    ({"calibration": {"calibration_set_size": 2.5}}, "calibration.calibration_set_size"),
    ({"calibration": {"window": 2.5}}, "calibration.window"),
    ({"calibration": {"confidence": 1.0}}, "calibration.confidence"),
    ({"calibration": {"windw": 3}}, "calibration.windw"),
    ({"calibration": [1, 2]}, "calibration"),
    ({"calibration": {"cusum": [1]}}, "calibration.cusum"),
    ({"calibration": {"cusum": {"threshold": "x"}}}, "calibration.cusum.threshold"),
    ({"calibration": {"cusum": {"treshold": 4}}}, "calibration.cusum.treshold"),
    ({"aggregation": {"correct_pseudocount": -1}}, "aggregation.correct_pseudocount"),
    ({"aggregation": {"tol": "abc"}}, "aggregation.tol"),
    ({"aggregation": {"max_iter": -5}}, "aggregation.max_iter"),
    ({"aggregation": {"reopen_low_confidence": "no"}}, "aggregation.reopen_low_confidence"),
    ({"aggregation": {"min_confidense": 0.6}}, "aggregation.min_confidense"),
    ({"aggregation": "fast"}, "aggregation"),
])
def test_settings_errors_name_the_file_and_the_field(data: dict[str, object],
                                                     field: str) -> None:
    with pytest.raises(InputError) as caught:
        settings_from_dict(data, file="q.yaml")
    assert (caught.value.file, caught.value.field) == ("q.yaml", field)


def test_valid_settings_still_load() -> None:
    aggregation, calibration = settings_from_dict({
        "aggregation": {"min_reviewer_answers": 3, "min_confidence": 1, "tol": 0,
                        "reopen_low_confidence": False},
        "calibration": {"window": 10, "confidence": 0.9, "cusum": {"threshold": 4}}})
    assert aggregation.min_confidence == 1 and aggregation.reopen_low_confidence is False
    assert calibration.window == 10 and calibration.cusum.threshold == 4
    assert settings_from_dict(None) == (ModelAggregationConfig(), CalibrationConfig())
    # What a fit records reads back as the same settings.
    assert ModelAggregationConfig.from_dict(json.loads(json.dumps(
        aggregation.as_dict()))) == aggregation
