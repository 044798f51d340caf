r"""Change of a rate between a reference and a current window, and of agreement.

**Rates** (adjudication rate, guideline-gap rate, escalation-rule hit rate, gold
accuracy): the reference has :math:`k_r` successes in :math:`n_r` trials, the current
window :math:`k_c` in :math:`n_c`. The test is Fisher's exact test on the
:math:`2 \times 2` table (conditional on the margins, so valid at any size, and
conservative), one-sided when only one direction matters (a rising adjudication rate, a
falling gold accuracy) and two-sided for escalation-rule hit rates, where a rule that
stops firing is as suspicious as one that fires more. Each rate comes with its Wilson
interval (:func:`hilt.quality.calibration.wilson_interval`), and the change with
Newcombe's hybrid score interval built from the two (method 10 of Newcombe 1998).

**Agreement**: each item rated by :math:`m_u \ge 2` reviewers contributes its share of
agreeing reviewer pairs :math:`a_u = \sum_c n_{uc}(n_{uc}-1) / (m_u(m_u-1))` (the unit
term of percent agreement, :class:`hilt.quality.agreement.PercentAgreementStatistic`).
Items are independent units, so the window means of :math:`a_u` are compared with
Welch's unequal-variance t-test (one-sided: agreement fell). Pairs within one item are
not independent, which is why the unit is the item. When a window's items all have the
same :math:`a_u` (every item agrees, say) Welch's statistic has no variance to divide
by, and "a fall is certain" would be claimed from two items; the test is then the
permutation test of the difference in means (Fisher–Pitman; exact for small windows,
else 9,999 seeded random permutations, p ≥ 1/10,000), which is valid at any size. Each
mean has the item-level Wilson interval of
:func:`hilt.quality.calibration.item_wilson_interval` (Wilson's interval on the
number of items: an :math:`a_u` in [0, 1] has variance at most
:math:`\bar a(1 - \bar a)`), which keeps its width when the sample variance is 0, and
the change has the interval of the difference built from the two (MOVER, Zou & Donner
2008).

References: R. A. Fisher (1935), *The Design of Experiments*, §2 and §21; B. L. Welch
(1947), "The generalization of Student's problem when several different population
variances are involved", Biometrika 34:28–35; R. G. Newcombe (1998), "Interval
estimation for the difference between independent proportions", Stat. Med.
17:873–890; G. Y. Zou and A. Donner (2008), "Construction of confidence limits about
effect measures", Stat. Methods Med. Res. 17:1–18.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from hilt.quality.agreement import PercentAgreementStatistic
from hilt.quality.calibration import item_wilson_interval, wilson_interval

Direction = Literal["increase", "decrease", "two-sided"]


@dataclass(frozen=True)
class RateChange:
    reference_successes: int
    reference_trials: int
    current_successes: int
    current_trials: int
    reference_rate: float | None
    reference_ci: tuple[float, float]
    current_rate: float | None
    current_ci: tuple[float, float]
    change: float | None
    p_value: float
    direction: str
    change_ci: tuple[float, float] | None = None
    """Newcombe's hybrid score interval of ``change`` (None when a window is empty)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def difference_interval(reference: float | None, reference_ci: tuple[float, float] | None,
                        current: float | None, current_ci: tuple[float, float] | None
                        ) -> tuple[float, float] | None:
    """Interval of ``current − reference`` from the two estimates and their intervals
    (MOVER: Newcombe 1998 method 10 for Wilson intervals, Zou & Donner 2008 in general);
    None when either estimate is missing."""
    if reference is None or current is None or reference_ci is None or current_ci is None:
        return None
    change = current - reference
    low = change - float(np.hypot(current - current_ci[0], reference_ci[1] - reference))
    high = change + float(np.hypot(current_ci[1] - current, reference - reference_ci[0]))
    return max(-1.0, low), min(1.0, high)


def rate_change(reference_successes: int, reference_trials: int, current_successes: int,
                current_trials: int, direction: Direction = "two-sided",
                confidence: float = 0.95) -> RateChange:
    """Fisher's exact test of a change in a binomial rate, with Wilson intervals."""
    for k, n in ((reference_successes, reference_trials),
                 (current_successes, current_trials)):
        if not 0 <= k <= n:
            raise ValueError("need 0 <= successes <= trials")
    ref_low, ref_high = wilson_interval(reference_successes, reference_trials, confidence)
    cur_low, cur_high = wilson_interval(current_successes, current_trials, confidence)
    ref_rate = reference_successes / reference_trials if reference_trials else None
    cur_rate = current_successes / current_trials if current_trials else None
    if reference_trials == 0 or current_trials == 0:
        p_value = 1.0
    else:
        # Rows: current, reference; columns: success, failure. "greater" asks whether the
        # current window has higher odds of success than the reference.
        table = [[current_successes, current_trials - current_successes],
                 [reference_successes, reference_trials - reference_successes]]
        alternative = {"increase": "greater", "decrease": "less",
                       "two-sided": "two-sided"}[direction]
        p_value = float(stats.fisher_exact(table, alternative=alternative).pvalue)
    change = (cur_rate - ref_rate) if cur_rate is not None and ref_rate is not None else None
    ref_ci, cur_ci = (float(ref_low), float(ref_high)), (float(cur_low), float(cur_high))
    return RateChange(reference_successes, reference_trials, current_successes,
                      current_trials, ref_rate, ref_ci, cur_rate, cur_ci, change,
                      min(1.0, p_value), direction,
                      difference_interval(ref_rate, ref_ci, cur_rate, cur_ci))


def fisher_p_values(reference_successes: npt.ArrayLike, reference_trials: npt.ArrayLike,
                    current_successes: npt.ArrayLike, current_trials: npt.ArrayLike,
                    direction: Direction) -> npt.NDArray[np.float64]:
    """Fisher's exact p-values for many 2×2 tables at once.

    One-sided values come straight from the hypergeometric distribution of the current
    window's successes given the margins (identical to :func:`scipy.stats.fisher_exact`
    with ``alternative="greater"``/``"less"``); two-sided values call
    :func:`scipy.stats.fisher_exact` per table.
    """
    ref_k = np.asarray(reference_successes, dtype=np.int64)
    ref_n = np.asarray(reference_trials, dtype=np.int64)
    cur_k = np.asarray(current_successes, dtype=np.int64)
    cur_n = np.asarray(current_trials, dtype=np.int64)
    total, successes = ref_n + cur_n, ref_k + cur_k
    if direction == "increase":
        p = stats.hypergeom.sf(cur_k - 1, total, successes, cur_n)
    elif direction == "decrease":
        p = stats.hypergeom.cdf(cur_k, total, successes, cur_n)
    else:
        p = np.array([stats.fisher_exact([[a, n - a], [b, m - b]]).pvalue
                      for a, n, b, m in zip(cur_k.tolist(), cur_n.tolist(), ref_k.tolist(),
                                            ref_n.tolist(), strict=True)], dtype=np.float64)
    return np.clip(np.nan_to_num(np.asarray(p, dtype=np.float64), nan=1.0), 0.0, 1.0)


def item_agreement(items: Sequence[Any], labels: Sequence[Any]) -> npt.NDArray[np.float64]:
    """Share of agreeing reviewer pairs for each item answered at least twice."""
    if len(items) != len(labels):
        raise ValueError("items and labels must have the same length")
    if not len(items):
        return np.zeros(0)
    item_codes, item_names = _codes(items)
    label_codes, label_names = _codes(labels)
    statistic = PercentAgreementStatistic(item_codes, label_codes, len(item_names),
                                          len(label_names))
    return np.asarray(statistic.item_agreement, dtype=np.float64)


def _codes(values: Sequence[Any]) -> tuple[npt.NDArray[np.int64], list[Any]]:
    lookup: dict[Any, int] = {}
    codes = np.fromiter((lookup.setdefault(str(v), len(lookup)) for v in values),
                        dtype=np.int64, count=len(values))
    return codes, list(lookup)


@dataclass(frozen=True)
class AgreementChange:
    reference_items: int
    current_items: int
    reference_agreement: float | None
    reference_ci: tuple[float, float] | None
    current_agreement: float | None
    current_ci: tuple[float, float] | None
    change: float | None
    p_value: float
    change_ci: tuple[float, float] | None = None
    """Interval of ``change`` (MOVER from the two item-level intervals)."""
    test: str = "welch"
    """``welch``, or ``permutation`` when a window's item agreements do not vary."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PERMUTATIONS = 9999


def _mean_interval(values: npt.NDArray[np.float64], confidence: float
                   ) -> tuple[float | None, tuple[float, float] | None]:
    """Mean of [0, 1] item scores with its item-level Wilson interval (see the module)."""
    if values.size == 0:
        return None, None
    rate = item_wilson_interval(np.clip(values, 0.0, 1.0), np.ones(values.size), confidence)
    return float(values.mean()), (rate.ci_low, rate.ci_high)


def _permutation_p(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
                   ) -> float:
    """One-sided permutation p-value that the current mean lies below the reference
    mean (exact when there are at most :data:`PERMUTATIONS` distinct splits)."""
    if np.ptp(np.concatenate([reference, current])) == 0:
        return 1.0  # every item alike: no split differs from another

    def fall(cur: npt.NDArray[np.float64], ref: npt.NDArray[np.float64],
             axis: int) -> npt.NDArray[np.float64]:
        return np.asarray(np.mean(cur, axis=axis) - np.mean(ref, axis=axis))

    result = stats.permutation_test((current, reference), fall, vectorized=True,
                                    n_resamples=PERMUTATIONS, alternative="less",
                                    permutation_type="independent", random_state=0)
    return float(min(1.0, result.pvalue))


def agreement_change(reference: npt.ArrayLike, current: npt.ArrayLike,
                     confidence: float = 0.95) -> AgreementChange:
    """One-sided test that mean item agreement fell from reference to current: Welch's
    t-test, or the permutation test when either window's items do not vary (see the
    module); item-level Wilson intervals for both means and their difference."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref_mean, ref_ci = _mean_interval(ref, confidence)
    cur_mean, cur_ci = _mean_interval(cur, confidence)
    p_value, test = 1.0, "welch"
    if ref.size >= 2 and cur.size >= 2:
        if ref.std() == 0 or cur.std() == 0:
            # No sample variance on one side: Welch's statistic would rest on the other
            # side alone (or divide by zero); the permutation test needs no variance.
            p_value, test = _permutation_p(ref, cur), "permutation"
        else:
            result = stats.ttest_ind(cur, ref, equal_var=False, alternative="less")
            p_value = float(result.pvalue) if np.isfinite(result.pvalue) else 1.0
    change = cur_mean - ref_mean if cur_mean is not None and ref_mean is not None else None
    return AgreementChange(int(ref.size), int(cur.size), ref_mean, ref_ci, cur_mean, cur_ci,
                           change, p_value,
                           difference_interval(ref_mean, ref_ci, cur_mean, cur_ci), test)
