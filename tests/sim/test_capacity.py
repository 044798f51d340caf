"""Simulated reviewers and capacity planning against known values."""

from __future__ import annotations

import numpy as np
import pytest

from hilt.sim.capacity import erlang_c_wait, plan
from hilt.sim.reviewers import DEFAULT_POOL, ReviewerProfile


def test_erlang_c_matches_mm1_closed_form() -> None:
    # M/M/1: Wq = lambda / (mu (mu - lambda)).
    assert erlang_c_wait(1.0, 2.0, 1) == pytest.approx(0.5)
    assert erlang_c_wait(3.0, 2.0, 1) is None


def test_erlang_c_matches_textbook_mm2() -> None:
    # M/M/2 with lambda=2, mu=1.5 (rho=2/3): P0=0.2, Lq=16/15, Wq=Lq/lambda=8/15 h.
    assert erlang_c_wait(2.0, 1.5, 2) == pytest.approx(8 / 15)


def test_confusion_rows_are_distributions_and_drifter_decays() -> None:
    for profile in DEFAULT_POOL:
        m = profile.confusion(3, progress=0.9)
        assert np.allclose(m.sum(axis=1), 1.0)
    drifter = ReviewerProfile("d", "drifter", 0.9, decay_to=0.5, decay_start=0.5)
    assert drifter.accuracy_at(0.2) == 0.9
    assert drifter.accuracy_at(1.0) == pytest.approx(0.5)


def test_overlap_and_dawid_skene_improve_label_accuracy() -> None:
    one = plan(1, 1000, n_items=1500, seed=1)
    three = plan(3, 1000, n_items=1500, seed=1)
    assert three.accuracy_mv > one.accuracy_mv
    # With a spammer and a careless reviewer in the pool, DS beats majority vote.
    assert three.accuracy_ds > three.accuracy_mv
    assert three.accuracy_ds_ci[0] < three.accuracy_ds < three.accuracy_ds_ci[1]
    assert three.utilisation == pytest.approx(3 * one.utilisation, rel=1e-3)
