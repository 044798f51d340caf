r"""Rubric-version bridges as pure computations: the old→new label transition matrix,
the silent-policy-change flag, compatibility, and whether a dataset may mix versions.

A bridge re-reviews items labelled under the old version with the new version, sampled
stratified by the old label. Within stratum (row) :math:`i` the new labels are a
multinomial sample, so each cell :math:`P(\text{new}=j \mid \text{old}=i)` gets a Wilson
interval (:func:`hilt.quality.calibration.wilson_interval`), as does the row's change
probability

.. math:: c_i = P(\text{new} \ne \mu(i) \mid \text{old} = i)

where :math:`\mu` maps old labels to the new labels that mean the same (the identity
unless a mapping is recorded). The row is **flagged** — labels moved beyond what the
threshold :math:`t` allows — when the lower confidence bound of :math:`c_i` exceeds
:math:`t`; with :math:`K` rows the bounds are at confidence :math:`1 - \alpha/K`
(Bonferroni), so a bridge over an unchanged policy flags some row with probability at
most :math:`\alpha` whenever the true re-review disagreement stays below :math:`t`.

:math:`t` must sit above the test–retest disagreement of the review process itself
(two reviews of the same item under the same rubric disagree at some rate); a change
that moves fewer labels than that cannot be told from noise.

Compatibility of the two versions for one question:

- **incompatible** — some row is flagged;
- **compatible** — every testable row has at least ``min(min_row_n, available)``
  re-reviewed items (``available``: the items the bridge could re-review for that old
  label) and an upper bound of :math:`c_i` at or below ``compatible_margin``;
- **unknown** — otherwise (bridge unfinished or too small to tell).

A row with nothing available to re-review (an old option nobody chose) cannot be tested:
it is listed in ``untestable`` and does not keep the bridge from a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hilt.quality._settings import require_int, require_number
from hilt.quality.calibration import wilson_interval

COMPATIBLE, INCOMPATIBLE, UNKNOWN = "compatible", "incompatible", "unknown"
_PLENTY = 2**62


@dataclass(frozen=True)
class BridgeSettings:
    change_threshold: float = 0.15
    """A row is flagged when the lower bound of P(changed | old) exceeds this."""
    compatible_margin: float = 0.30
    """Compatible needs the upper bound of P(changed | old) at or below this, every row."""
    confidence: float = 0.95
    """Family-wise over the rows (Bonferroni)."""
    min_row_n: int = 10
    """Re-reviewed items a row needs before it can count towards compatible."""

    def __post_init__(self) -> None:
        require_number("change_threshold", self.change_threshold, low=0.0, high=1.0,
                       high_open=True)
        require_number("compatible_margin", self.compatible_margin, low=0.0, high=1.0,
                       low_open=True)
        require_number("confidence", self.confidence, low=0.0, high=1.0, low_open=True,
                       high_open=True)
        require_int("min_row_n", self.min_row_n, minimum=1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RowChange:
    old: str
    n: int
    changed: int
    rate: float | None
    ci_low: float
    ci_high: float
    flagged: bool


@dataclass(frozen=True)
class TransitionMatrix:
    old_categories: tuple[str, ...]
    new_categories: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    """``counts[i][j]``: items with old label ``old_categories[i]`` and new label
    ``new_categories[j]``."""
    cells: dict[str, dict[str, tuple[float | None, float, float]]]
    """old -> new -> (share, Wilson low, Wilson high) at the row confidence; the share
    is None (and the interval the whole range) in a row without re-reviewed items, where
    it is undefined, as the row's ``rate`` is."""
    rows: tuple[RowChange, ...]
    row_confidence: float
    mapping: dict[str, str]
    status: str
    reason: str
    untestable: tuple[str, ...] = ()
    """Old labels with no items available to re-review; they take no part in the
    status."""

    @property
    def silent_policy_change(self) -> bool:
        return any(r.flagged for r in self.rows)

    @property
    def flagged(self) -> list[str]:
        return [r.old for r in self.rows if r.flagged]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["silent_policy_change"] = self.silent_policy_change
        out["flagged"] = self.flagged
        return out


def transition_matrix(pairs: Iterable[tuple[Any, Any]], *,
                      old_categories: Sequence[str] | None = None,
                      new_categories: Sequence[str] | None = None,
                      mapping: Mapping[str, str] | None = None,
                      settings: BridgeSettings = BridgeSettings(),
                      available: Mapping[str, int] | None = None,
                      labelled: Mapping[str, int] | None = None) -> TransitionMatrix:
    """Estimate P(new | old) from ``(old label, new label)`` pairs of one question.

    ``available``: per old label, how many items the bridge could re-review (its sampled
    items). A row needs ``min(min_row_n, available)`` re-reviewed items; a row with none
    available is untestable and ignored by the status. Without ``available``, a row
    counts as available when it has re-reviewed items (every row given is all there is).
    ``labelled``: per old label, how many labels under the old version the bridge drew
    its sample from; when a row has used up the bridge but more labels exist, the reason
    advises a bridge with a larger ``per_stratum`` rather than more labels.
    """
    observed = [(str(o), str(n)) for o, n in pairs]
    olds = list(old_categories or [])
    olds += sorted({o for o, _ in observed} - set(olds))
    news = list(new_categories or [])
    news += sorted({n for _, n in observed} - set(news))
    index_old = {c: i for i, c in enumerate(olds)}
    index_new = {c: j for j, c in enumerate(news)}
    counts = np.zeros((len(olds), len(news)), dtype=np.int64)
    for o, n in observed:
        counts[index_old[o], index_new[n]] += 1
    maps = {str(k): str(v) for k, v in (mapping or {}).items()}
    rows_present = [i for i in range(len(olds)) if counts[i].sum() > 0]
    row_confidence = 1 - (1 - settings.confidence) / max(len(rows_present), 1)
    totals = counts.sum(axis=1)
    low, high = wilson_interval(counts, np.broadcast_to(totals[:, None], counts.shape),
                                row_confidence)
    cells = {old: {new: (float(counts[i, j] / totals[i]) if totals[i] else None,
                         float(low[i, j]), float(high[i, j]))
                   for j, new in enumerate(news)} for i, old in enumerate(olds)}
    rows = []
    for i, old in enumerate(olds):
        same = index_new.get(maps.get(old, old))
        kept = int(counts[i, same]) if same is not None else 0
        row_n = int(totals[i])
        changed = row_n - kept
        c_low, c_high = wilson_interval(changed, row_n, row_confidence)
        rows.append(RowChange(old, row_n, changed, changed / row_n if row_n else None,
                              float(c_low),
                              float(c_high),
                              bool(row_n and c_low > settings.change_threshold)))
    # Without counts of what is available, a row with items is taken to have plenty more.
    supply = {row.old: (int(available.get(row.old, 0)) if available is not None
                        else (_PLENTY if row.n else 0)) for row in rows}
    untestable = tuple(row.old for row in rows if supply[row.old] <= 0 and row.n == 0)
    status, reason = _classify(rows, settings, supply, labelled or {})
    if status == INCOMPATIBLE and new_categories is not None:
        # An old option the new version lacks (renamed, merged or dropped) reads as a
        # change of every label until a mapping says what it became.
        gone = [r.old for r in rows if r.flagged and maps.get(r.old, r.old) not in
                set(new_categories)]
        if gone:
            reason += (f"; old label(s) {gone} are not options of the new version: if "
                       "renamed or merged, "
                       "record a mapping (hilt drift decide --kind mapping)")
    return TransitionMatrix(tuple(olds), tuple(news),
                            tuple(tuple(int(x) for x in r) for r in counts), cells,
                            tuple(rows), row_confidence, maps, status, reason, untestable)


def _classify(rows: Sequence[RowChange], settings: BridgeSettings,
              supply: Mapping[str, int], labelled: Mapping[str, int]) -> tuple[str, str]:
    flagged = [r for r in rows if r.flagged]
    if flagged:
        worst = max(flagged, key=lambda r: r.ci_low)
        return INCOMPATIBLE, (f"labels moved: P(changed | old={worst.old!r}) ≥ "
                              f"{worst.ci_low:.2f} (lower bound) > threshold "
                              f"{settings.change_threshold}")
    if not any(r.n for r in rows):
        return UNKNOWN, "no re-reviewed items yet"
    # An old label with nothing to re-review cannot be tested and cannot hold the
    # verdict back; a row with fewer items than min_row_n needs all of them.
    testable = [r for r in rows if r.n > 0 or supply[r.old] > 0]
    small = [r.old for r in testable
             if r.n < min(settings.min_row_n, max(supply[r.old], r.n))]
    if small:
        need = {old: min(settings.min_row_n, supply[old]) for old in small}
        wanted = (f"{settings.min_row_n} each" if set(need.values()) == {settings.min_row_n}
                  else ", ".join(f"{old!r}: {n}" for old, n in need.items()))
        return UNKNOWN, f"too few re-reviewed items for old label(s) {small} (need {wanted})"
    wide = [r for r in testable if r.ci_high > settings.compatible_margin]
    if wide:
        exhausted = [r.old for r in wide if r.n >= supply[r.old]]
        more = [r.old for r in wide if r.n < supply[r.old]]
        advice = "re-review more items" if more else _exhausted_advice(wide, labelled)
        return UNKNOWN, (f"cannot rule out a change above {settings.compatible_margin} for "
                         f"old label(s) {[r.old for r in wide]}; {advice}"
                         + (f" (exhausted: {exhausted})" if more and exhausted else ""))
    return COMPATIBLE, (f"every old label kept its meaning: P(changed) ≤ "
                        f"{settings.compatible_margin} at the upper bound")


def _exhausted_advice(wide: Sequence[RowChange], labelled: Mapping[str, int]) -> str:
    """What could still decide once every item of the bridge is re-reviewed: a larger
    bridge where the old version has labels the bridge did not sample, else only more
    labels under the old version."""
    more = {r.old: int(labelled[r.old]) for r in wide if labelled.get(r.old, 0) > r.n}
    if more:
        return ("every item of this bridge is re-reviewed, but the old version has more "
                f"labels than it sampled ({more} in all): a new bridge with a larger "
                "per_stratum (--per-stratum) could tell")
    return ("every available item is re-reviewed; only more labels under the old version "
            "could tell")


def apply_mapping(value: Any, mapping: Mapping[str, str]) -> Any:
    """An old-version label translated by a recorded mapping (unchanged if unmapped)."""
    if isinstance(value, list):
        return sorted({mapping.get(str(v), str(v)) for v in value})
    return mapping.get(str(value), value) if isinstance(value, str) else value


def parse_version_ref(ref: str | tuple[str, int]) -> tuple[str, int]:
    """``"harm@2"`` or ``("harm", 2)`` -> ``("harm", 2)``."""
    if isinstance(ref, tuple):
        return str(ref[0]), int(ref[1])
    name, sep, version = str(ref).rpartition("@")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"bad rubric version {ref!r}; expected ID@VERSION")
    return name, int(version)


CompatLookup = Callable[[str, int, int], Any]


def check_mixable(versions_in_dataset: Iterable[str | tuple[str, int]],
                  compat_lookup: CompatLookup, *, allow_unknown: bool = False
                  ) -> list[dict[str, Any]]:
    """Problems with mixing the rubric versions of one dataset; empty when it may mix.

    ``versions_in_dataset``: ``"rubric@version"`` strings (the form stored in dataset
    lineage) or ``(rubric, version)`` pairs. Every older version of a rubric is checked
    against the newest version present, through ``compat_lookup(rubric_id, old, new)``,
    which returns an object or dict with ``status`` and ``mixable``
    (e.g. :func:`hilt.quality.drift.bridge.bridge_compatibility` bound to a session).
    A pair is a problem unless it is mixable (compatible, or a mapping / relabelling /
    acceptance is recorded); ``unknown`` passes only with ``allow_unknown``.
    """
    by_rubric: dict[str, set[int]] = {}
    for ref in versions_in_dataset:
        rubric_id, version = parse_version_ref(ref)
        by_rubric.setdefault(rubric_id, set()).add(version)
    problems = []
    for rubric_id in sorted(by_rubric):
        versions = sorted(by_rubric[rubric_id])
        newest = versions[-1]
        for old in versions[:-1]:
            result = compat_lookup(rubric_id, old, newest)
            get = (result.get if isinstance(result, Mapping)
                   else lambda k, d=None, r=result: getattr(r, k, d))
            status = str(get("status", UNKNOWN))
            mixable = bool(get("mixable", status == COMPATIBLE))
            if mixable or (status == UNKNOWN and allow_unknown):
                continue
            problems.append({"rubric_id": rubric_id, "old_version": old,
                             "new_version": newest, "status": status,
                             "reason": str(get("reason", "")),
                             "fix": "record a label mapping, a relabelling or an acceptance "
                                    "(hilt drift decide), or select one rubric version"})
    return problems
