"""Fixtures for data-selection tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from data_factories import make_candidate, make_label

from hilt.data.records import Candidate
from hilt.review.records import FinalLabelRecord


@pytest.fixture
def label() -> Callable[..., FinalLabelRecord]:
    return make_label


@pytest.fixture
def candidate() -> Callable[..., Candidate]:
    return make_candidate
