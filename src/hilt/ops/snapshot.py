"""The periodic quality snapshot: agreement on recently resolved tasks and gold accuracy
per reviewer, each with a 95 % interval.

Agreement is pairwise percent agreement (Fleiss 1971's observed agreement P̄): for each
resolved (task, question) with n ≥ 2 answers, the share of reviewer pairs that gave the
same answer, pooled over all pairs, each unordered pair counted once:

    P = Σ_i Σ_v C(c_iv, 2) / Σ_i C(n_i, 2)

The pairs within one item are not independent (one odd answer breaks n − 1 pairs at
once), so the 95 % interval is an item-cluster percentile bootstrap: items are drawn
with replacement and the pooled ratio recomputed, 2,000 times with a fixed seed (B.
Efron and R. J. Tibshirani 1993, ch. 13). With fewer than 20 items, too few for a
percentile bootstrap, it is Wilson's interval on the pair counts instead; each pool's
entry names its method in ``ci_method``. Gold accuracy comes from
:func:`hilt.quality.reviewers.reviewer_report`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import canonical_json
from hilt.store.tables.review import ReviewRow, ReviewTaskRow

BOOTSTRAP_MIN_ITEMS = 20
BOOTSTRAP_RESAMPLES = 2000


def _item_pairs(answer_groups: list[list[Any]]) -> list[tuple[int, int]]:
    """(agreeing pairs, pairs) per item with at least two answers; unordered pairs."""
    out = []
    for values in answer_groups:
        n = len(values)
        if n < 2:
            continue
        counts = Counter(canonical_json(v) for v in values)
        out.append((sum(c * (c - 1) // 2 for c in counts.values()), n * (n - 1) // 2))
    return out


def pooled_pair_agreement(answer_groups: list[list[Any]]) -> tuple[int, int]:
    """(agreeing pairs, all pairs) over groups of answers to one item; each unordered
    pair of answers counts once."""
    items = _item_pairs(answer_groups)
    return sum(a for a, _ in items), sum(t for _, t in items)


def _item_bootstrap(items: list[tuple[int, int]], resamples: int, seed: int
                    ) -> tuple[float, float]:
    import numpy as np

    agree = np.array([a for a, _ in items], dtype=np.float64)
    pairs = np.array([t for _, t in items], dtype=np.float64)
    m = len(items)
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    chunk = max(1, min(resamples, 1_000_000 // m))  # bounded memory for large windows
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        draws = rng.integers(0, m, size=(stop - start, m))
        ratios[start:stop] = agree[draws].sum(axis=1) / pairs[draws].sum(axis=1)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return float(low), float(high)


def pool_agreement(answer_groups: list[list[Any]], *, resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> dict[str, Any]:
    """Pooled pairwise agreement of one pool with its 95 % interval (see the module)."""
    from hilt.quality.calibration import wilson_interval

    items = _item_pairs(answer_groups)
    agree, total = sum(a for a, _ in items), sum(t for _, t in items)
    if len(items) >= BOOTSTRAP_MIN_ITEMS:
        low, high = _item_bootstrap(items, resamples, seed)
        method = "item bootstrap"
    else:
        w_low, w_high = wilson_interval(agree, total)
        low, high, method = float(w_low), float(w_high), "wilson"
    return {"value": agree / total if total else None, "pairs": total, "items": len(items),
            "ci_low": low, "ci_high": high, "ci_method": method}


def quality_snapshot(session: Session, now: datetime, *, window_hours: float = 24.0
                     ) -> dict[str, Any]:
    from hilt.quality.reviewers import ReviewRecord, reviewer_report

    since = now - timedelta(hours=window_hours)
    t, r = ReviewTaskRow, ReviewRow
    rows = session.execute(
        sa.select(r.task_id, r.answers, t.pool).join(t, t.id == r.task_id)
        .where(t.status == "resolved", t.resolved_at >= since, t.is_gold.is_(False))).all()
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for task_id, answers, pool in rows:
        for question, value in (answers or {}).items():
            groups.setdefault((pool, task_id, question), []).append(value)
    by_pool: dict[str, list[list[Any]]] = {}
    for (pool, _task, _q), values in groups.items():
        by_pool.setdefault(pool, []).append(values)
    agreement = {pool: pool_agreement(pool_groups)
                 for pool, pool_groups in sorted(by_pool.items())}
    gold_rows = session.execute(
        sa.select(r.reviewer_id, r.task_id, r.answers, t.gold_answers, r.submitted_at)
        .join(t, t.id == r.task_id).where(t.is_gold.is_(True))).all()
    records = []
    for reviewer, task_id, answers, gold, at in gold_rows:
        for question, truth in (gold or {}).items():
            if question in (answers or {}):
                records.append(ReviewRecord(reviewer, f"{task_id}:{question}",
                                            canonical_json(answers[question]), True,
                                            canonical_json(truth), at))
    reviewers = {row.reviewer: {"gold_accuracy": row.gold_accuracy, "n_gold": row.n_gold,
                                "ci_low": row.ci_low, "ci_high": row.ci_high,
                                "status": str(row.status)}
                 for row in reviewer_report(records)} if records else {}
    return {"at": now.isoformat(), "window_hours": window_hours, "agreement": agreement,
            "reviewers": reviewers}
