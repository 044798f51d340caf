"""Rubric drift and feedback drift: monitors over time windows, alerts, bridge sets
between rubric versions, and lineage from a model version back to rubrics and policies.

Pure computations (no database): :mod:`.shift` (chi-square, Jensen–Shannon, PSI),
:mod:`.rates` (Fisher exact rate change, agreement change), :mod:`.monitors` (the
windowed detectors), :mod:`.transition` (bridge transition matrix, compatibility,
:func:`check_mixable`), :mod:`.synthetic` (streams with injected drift).
Store-backed: :mod:`.runner` (:func:`run_monitors`), :mod:`.bridge`, :mod:`.lineage`,
:mod:`.activation` (which escalation rule-set version was active when).
See ``docs/drift.md``.
"""

from hilt.quality.drift.alerts import Alert, group_key
from hilt.quality.drift.monitors import (
    Categorical,
    Outcome,
    Rating,
    detect_agreement_drop,
    detect_rate_change,
    detect_shift,
)
from hilt.quality.drift.rates import agreement_change, item_agreement, rate_change
from hilt.quality.drift.shift import (
    chi_square_homogeneity,
    jensen_shannon,
    label_shift,
    population_stability_index,
)
from hilt.quality.drift.transition import (
    BridgeSettings,
    TransitionMatrix,
    apply_mapping,
    check_mixable,
    transition_matrix,
)
from hilt.quality.drift.windows import MONITORS, DriftConfig

__all__ = [
    "MONITORS",
    "Alert",
    "BridgeSettings",
    "Categorical",
    "DriftConfig",
    "Outcome",
    "Rating",
    "TransitionMatrix",
    "agreement_change",
    "apply_mapping",
    "check_mixable",
    "chi_square_homogeneity",
    "detect_agreement_drop",
    "detect_rate_change",
    "detect_shift",
    "group_key",
    "item_agreement",
    "jensen_shannon",
    "label_shift",
    "population_stability_index",
    "rate_change",
    "transition_matrix",
]
