"""The drift statistics against scipy / statsmodels and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.proportion import proportion_confint

from hilt.errors import InputError
from hilt.quality.drift import (
    agreement_change,
    check_mixable,
    chi_square_homogeneity,
    item_agreement,
    jensen_shannon,
    label_shift,
    population_stability_index,
    rate_change,
    transition_matrix,
)
from hilt.quality.drift.rates import fisher_p_values
from hilt.quality.drift.shift import POOLED
from hilt.quality.drift.transition import BridgeSettings, apply_mapping
from hilt.quality.drift.windows import DriftConfig, per_test_alpha


def test_chi_square_matches_scipy_without_pooling() -> None:
    ref, cur = [120, 50, 30], [80, 60, 60]
    result = chi_square_homogeneity(ref, cur, ["a", "b", "c"])
    statistic, p_value, dof, _ = stats.chi2_contingency([ref, cur], correction=False)
    assert result.testable and not result.pooled
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(p_value)
    assert result.dof == dof == 2


def test_chi_square_pools_sparse_categories_until_expected_counts_reach_five() -> None:
    ref, cur = [100, 90, 4, 3, 2], [95, 100, 3, 4, 1]
    result = chi_square_homogeneity(ref, cur, ["a", "b", "c", "d", "e"])
    assert set(result.pooled) == {"c", "d", "e"}
    assert result.columns[-1] == POOLED
    table = np.array([[100, 90, 9], [95, 100, 8]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(expected[0])
    assert result.dof == 2
    # Too few to pool into a large enough column alone: the next category joins it.
    merged = chi_square_homogeneity([100, 90, 2, 1, 1], [95, 100, 1, 2, 0], list("abcde"))
    assert set(merged.pooled) == {"b", "c", "d", "e"} and merged.dof == 1
    # Pooling left only one column: nothing to test.
    assert not chi_square_homogeneity([3, 1], [2, 1], ["a", "b"]).testable


def test_jensen_shannon_matches_scipy_and_psi_matches_hand_value() -> None:
    ref, cur = np.array([60, 25, 15]), np.array([40, 30, 30])
    p = (ref + 0.5) / (ref.sum() + 1.5)
    q = (cur + 0.5) / (cur.sum() + 1.5)
    assert jensen_shannon(ref, cur) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert population_stability_index(ref, cur) == pytest.approx(
        float(np.sum((q - p) * np.log(q / p))))
    assert jensen_shannon(ref, ref) == pytest.approx(0.0, abs=1e-12)
    # Without smoothing an empty category makes PSI infinite; with it, finite.
    assert math.isfinite(population_stability_index([10, 0], [5, 5]))


def test_null_noise_floor_of_the_divergences_matches_the_documented_approximations() -> None:
    """E[JSD] ≈ (K-1)/(4 n ln 2) bits and E[PSI] ≈ 2(K-1)/n for equal windows of n."""
    rng = np.random.default_rng(3)
    k, n = 4, 400
    share = np.full(k, 1 / k)
    jsd, psi = [], []
    for _ in range(400):
        a, b = rng.multinomial(n, share), rng.multinomial(n, share)
        jsd.append(jensen_shannon(a, b, smoothing=0.0))
        psi.append(population_stability_index(a, b, smoothing=0.0))
    assert np.mean(jsd) == pytest.approx((k - 1) / (4 * n * math.log(2)), rel=0.15)
    assert np.mean(psi) == pytest.approx(2 * (k - 1) / n, rel=0.15)


def test_label_shift_reports_wilson_intervals_for_every_share() -> None:
    result = label_shift({"safe": 70, "harmful": 30}, {"safe": 50, "harmful": 50},
                         categories=["safe", "harmful", "borderline"])
    share, low, high = result.current_share_intervals["harmful"]
    ref_low, ref_high = proportion_confint(50, 100, method="wilson")
    assert (share, low, high) == pytest.approx((0.5, ref_low, ref_high))
    assert result.current_share_intervals["borderline"][0] == 0.0


@pytest.mark.parametrize("direction,alternative", [("increase", "greater"),
                                                   ("decrease", "less"),
                                                   ("two-sided", "two-sided")])
def test_fisher_p_values_match_scipy(direction: str, alternative: str) -> None:
    rng = np.random.default_rng(1)
    ref_n = rng.integers(5, 200, 30)
    cur_n = rng.integers(5, 100, 30)
    ref_k = rng.binomial(ref_n, 0.3)
    cur_k = rng.binomial(cur_n, 0.4)
    got = fisher_p_values(ref_k, ref_n, cur_k, cur_n, direction)  # type: ignore[arg-type]
    for i in range(30):
        table = [[cur_k[i], cur_n[i] - cur_k[i]], [ref_k[i], ref_n[i] - ref_k[i]]]
        assert got[i] == pytest.approx(stats.fisher_exact(table, alternative=alternative)
                                       .pvalue, rel=1e-9, abs=1e-12)


def test_rate_change_intervals_are_wilson() -> None:
    result = rate_change(10, 100, 30, 100, "increase")
    assert result.current_ci == pytest.approx(proportion_confint(30, 100, method="wilson"))
    assert result.change == pytest.approx(0.2)
    assert result.p_value < 0.001


def test_item_agreement_and_welch() -> None:
    items = ["a", "a", "a", "b", "b", "c"]
    labels = ["x", "x", "y", "x", "x", "z"]
    # a: 3 raters, 1 agreeing pair of 3 -> 1/3; b: 1; c: rated once, left out.
    assert sorted(item_agreement(items, labels).tolist()) == pytest.approx([1 / 3, 1.0])
    rng = np.random.default_rng(0)
    ref, cur = rng.random(50), rng.random(40) * 0.8
    result = agreement_change(ref, cur)
    assert result.p_value == pytest.approx(
        stats.ttest_ind(cur, ref, equal_var=False, alternative="less").pvalue)


def test_bonferroni_and_alpha_spending() -> None:
    assert per_test_alpha(0.01, 5) == pytest.approx(0.002)
    assert DriftConfig(false_alarm_rate=0.05, horizon_windows=50).alpha_per_window == \
        pytest.approx(0.001)
    with pytest.raises(InputError):
        DriftConfig(enabled=("nonsense",))


@pytest.mark.parametrize(("setting", "value", "reason"), [
    ("min_window_n", "abc", "must be an integer"),
    ("min_window_n", 2.5, "must be an integer"),
    ("min_window_n", True, "must be an integer"),
    ("min_window_n", 0, "at least 1"),
    ("horizon_windows", "10", "must be an integer"),
    ("window_hours", "24", "finite number"),
    ("window_hours", float("nan"), "finite number"),
    ("false_alarm_rate", 1.5, "(0, 1)"),
    ("smoothing", 0, "positive"),
    ("min_psi", -0.1, "not be negative"),
    ("min_rate_change", 2, "at most 1"),
    ("reference", 3, "must be a string"),
    ("enabled", "label_shift", "must be a list"),
    ("enabled", ["label_shift", 3], "must be a list"),
])
def test_config_values_are_type_checked_naming_file_and_field(
        setting: str, value: object, reason: str) -> None:
    # A config file's values are checked when it loads, not deep inside a monitor; a
    # string for `enabled` is not read as a list of its characters.
    with pytest.raises(InputError) as caught:
        DriftConfig.from_dict({setting: value}, file="drift.yaml")
    assert caught.value.file == "drift.yaml" and caught.value.field == setting
    assert reason in caught.value.reason


def test_config_from_dict_accepts_a_valid_file() -> None:
    cfg = DriftConfig.from_dict({"window_hours": 12, "min_window_n": 40,
                                 "enabled": ["label_shift"], "horizon_windows": None})
    assert cfg.enabled == ("label_shift",) and cfg.window_hours == 12


def test_transition_matrix_cells_are_wilson_at_bonferroni_confidence() -> None:
    pairs = ([("safe", "safe")] * 38 + [("safe", "borderline")] * 2
             + [("borderline", "harmful")] * 25 + [("borderline", "borderline")] * 15
             + [("harmful", "harmful")] * 40)
    m = transition_matrix(pairs, old_categories=["safe", "borderline", "harmful"])
    assert m.row_confidence == pytest.approx(1 - 0.05 / 3)
    low, high = proportion_confint(25, 40, alpha=0.05 / 3, method="wilson")
    assert m.cells["borderline"]["harmful"] == pytest.approx((25 / 40, low, high))
    assert m.flagged == ["borderline"] and m.status == "incompatible"
    # A recorded mapping borderline -> harmful explains most of the move; what is left
    # (15 of 40 stayed borderline) is still a change in meaning.
    mapped = transition_matrix(pairs, mapping={"borderline": "harmful"})
    row = next(r for r in mapped.rows if r.old == "borderline")
    assert row.changed == 15


def test_bridge_classification_compatible_unknown() -> None:
    steady = [(c, c) for c in ("a", "b") for _ in range(60)]
    assert transition_matrix(steady).status == "compatible"
    assert transition_matrix(steady[:5] + steady[60:65]).status == "unknown"
    assert transition_matrix([]).status == "unknown"
    noisy = [("a", "a")] * 50 + [("a", "b")] * 10 + [("b", "b")] * 60
    # 1/6 changed: above a 0.15 threshold in point estimate, but the lower bound is not.
    assert transition_matrix(noisy, settings=BridgeSettings(change_threshold=0.15)).status \
        != "incompatible"


def test_check_mixable() -> None:
    table = {("harm", 1, 3): {"status": "incompatible", "mixable": False, "reason": "moved"},
             ("harm", 2, 3): {"status": "compatible", "mixable": True},
             ("tone", 1, 2): {"status": "unknown", "mixable": False}}

    def lookup(rubric: str, old: int, new: int) -> dict[str, object]:
        return table[(rubric, old, new)]

    problems = check_mixable(["harm@1", "harm@2", ("harm", 3), "tone@1", "tone@2",
                              "solo@4"], lookup)
    assert [(p["rubric_id"], p["old_version"], p["status"]) for p in problems] == [
        ("harm", 1, "incompatible"), ("tone", 1, "unknown")]
    assert len(check_mixable(["tone@1", "tone@2"], lookup, allow_unknown=True)) == 0
    assert check_mixable(["harm@3"], lookup) == []
    with pytest.raises(ValueError):
        check_mixable(["harm"], lookup)
    assert apply_mapping("borderline", {"borderline": "harmful"}) == "harmful"
    assert apply_mapping(["a", "b"], {"a": "b"}) == ["b"]
