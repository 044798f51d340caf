"""Synthetic observation streams with known, injected drift, for validating the monitors.

Each generator returns plain observations (:mod:`.monitors`) spread uniformly over
consecutive windows starting at window index ``first_window``, and is deterministic given
its ``seed``. The drift scenarios are the ones the monitors exist for:

- :func:`gold_stream` — reviewers answering gold items; one reviewer's accuracy drops
  (abruptly or linearly) from ``onset``;
- :func:`label_stream` — final labels of one question; from ``onset`` a share ``flip`` of
  one category is labelled as another (a policy change nobody versioned);
- :func:`prompt_mix_stream` — incoming prompt topics whose unsafe share rises at
  ``onset``, with the resulting escalation-rule hits;
- :func:`rating_stream` — k reviewers per item; agreement falls when one reviewer starts
  answering at random;
- :func:`bridge_pairs` — (old, new) label pairs of a bridge set, with re-review noise and
  an optional flipped category.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from hilt.quality.drift.monitors import Categorical, Group, Outcome, Rating
from hilt.quality.drift.windows import window_start

DAY = timedelta(hours=24)
FIRST_WINDOW = 20_000  # 2024-10-04 with daily windows: any fixed index would do


def _times(rng: np.random.Generator, window: int, n: int, width: timedelta) -> list[datetime]:
    start = window_start(window, width)
    offsets = np.sort(rng.random(n)) * width.total_seconds()
    return [start + timedelta(seconds=float(s)) for s in offsets]


def gold_stream(*, n_windows: int, reviewers: int = 5, gold_per_window: int = 20,
                accuracy: float = 0.92, drifting_reviewer: int | None = 0,
                onset: int | None = None, accuracy_after: float = 0.6,
                ramp_windows: int = 0, width: timedelta = DAY,
                first_window: int = FIRST_WINDOW, seed: int = 0) -> list[Outcome]:
    """Gold answers (right/wrong) of several reviewers. With ``onset`` set, reviewer
    ``drifting_reviewer``'s accuracy moves to ``accuracy_after`` — at once, or linearly
    over ``ramp_windows`` windows."""
    rng = np.random.default_rng(seed)
    out: list[Outcome] = []
    for w in range(n_windows):
        for r in range(reviewers):
            p = accuracy
            if onset is not None and r == drifting_reviewer and w >= onset:
                progress = 1.0 if ramp_windows <= 0 else min(1.0, (w - onset + 1)
                                                             / ramp_windows)
                p = accuracy + (accuracy_after - accuracy) * progress
            group: Group = (("reviewer", f"r{r}"),)
            right = rng.random(gold_per_window) < p
            for at, ok in zip(_times(rng, first_window + w, gold_per_window, width), right,
                              strict=True):
                out.append(Outcome(at, group, bool(ok)))
    return out


def label_stream(*, n_windows: int, per_window: int = 200,
                 shares: Sequence[float] = (0.6, 0.25, 0.15),
                 categories: Sequence[str] = ("safe", "borderline", "harmful"),
                 onset: int | None = None, flip: tuple[str, str, float] | None = None,
                 group: Group = (("rubric", "harm@1"), ("question", "verdict")),
                 width: timedelta = DAY, first_window: int = FIRST_WINDOW, seed: int = 0
                 ) -> list[Categorical]:
    """Final labels of one question. ``flip=(a, b, f)`` from ``onset``: each label that
    would be ``a`` becomes ``b`` with probability ``f``."""
    rng = np.random.default_rng(seed)
    p = np.asarray(shares, dtype=np.float64)
    p = p / p.sum()
    out: list[Categorical] = []
    for w in range(n_windows):
        draws = rng.choice(len(categories), size=per_window, p=p)
        labels = [categories[i] for i in draws]
        if flip is not None and onset is not None and w >= onset:
            source, target, share = flip
            moved = rng.random(per_window) < share
            labels = [target if lab == source and m else lab
                      for lab, m in zip(labels, moved, strict=True)]
        for at, lab in zip(_times(rng, first_window + w, per_window, width), labels,
                           strict=True):
            out.append(Categorical(at, group, lab))
    return out


SAFE = ("coding", "cooking", "travel", "health")
UNSAFE = ("weapons", "malware", "self_harm")


def prompt_mix_stream(*, n_windows: int, per_window: int = 300, unsafe_share: float = 0.2,
                      onset: int | None = None, unsafe_share_after: float = 0.4,
                      guardrail_recall: float = 0.8, guardrail_false_positive: float = 0.05,
                      width: timedelta = DAY, first_window: int = FIRST_WINDOW, seed: int = 0
                      ) -> tuple[list[Categorical], list[Outcome]]:
    """Topics of incoming prompts (topic names as in :mod:`hilt.sim.stream`) and whether
    a guardrail escalation rule fired on each (it fires on unsafe prompts with
    ``guardrail_recall``, on safe ones with ``guardrail_false_positive``)."""
    rng = np.random.default_rng(seed)
    topics: list[Categorical] = []
    hits: list[Outcome] = []
    mix: Group = (("source", "sim"),)
    rule: Group = (("rule_set", "safety@1"), ("rule", "guardrail"))
    for w in range(n_windows):
        share = unsafe_share_after if onset is not None and w >= onset else unsafe_share
        unsafe = rng.random(per_window) < share
        for at, bad in zip(_times(rng, first_window + w, per_window, width), unsafe,
                           strict=True):
            pool = UNSAFE if bad else SAFE
            topics.append(Categorical(at, mix, pool[int(rng.integers(len(pool)))]))
            fire = rng.random() < (guardrail_recall if bad else guardrail_false_positive)
            hits.append(Outcome(at, rule, bool(fire)))
    return topics, hits


def rating_stream(*, n_windows: int, items_per_window: int = 60, reviewers: int = 4,
                  per_item: int = 2, accuracy: float = 0.9,
                  categories: Sequence[str] = ("safe", "borderline", "harmful"),
                  shares: Sequence[float] = (0.6, 0.25, 0.15), onset: int | None = None,
                  random_reviewer: int = 0, group: Group = (("rubric", "harm@1"),
                                                            ("question", "verdict")),
                  width: timedelta = DAY, first_window: int = FIRST_WINDOW, seed: int = 0
                  ) -> list[Rating]:
    """Items with a hidden true label, each answered by ``per_item`` distinct reviewers
    (right with ``accuracy``, else another category at random). From ``onset`` reviewer
    ``random_reviewer`` answers uniformly at random."""
    rng = np.random.default_rng(seed)
    p = np.asarray(shares, dtype=np.float64)
    p = p / p.sum()
    k = len(categories)
    out: list[Rating] = []
    for w in range(n_windows):
        times = _times(rng, first_window + w, items_per_window, width)
        for i, at in enumerate(times):
            truth = int(rng.choice(k, p=p))
            for r in rng.choice(reviewers, size=per_item, replace=False):
                if onset is not None and w >= onset and r == random_reviewer:
                    answer = int(rng.integers(k))
                elif rng.random() < accuracy:
                    answer = truth
                else:
                    answer = int((truth + 1 + rng.integers(k - 1)) % k)
                out.append(Rating(at, group, f"w{w}-i{i}", f"r{r}", categories[answer]))
    return out


def bridge_pairs(*, per_stratum: int = 40,
                 categories: Sequence[str] = ("safe", "borderline", "harmful"),
                 noise: float = 0.05, flip: tuple[str, str, float] | None = None,
                 seed: int = 0) -> list[tuple[str, str]]:
    """(old, new) pairs of a bridge stratified by old label: the new review repeats the
    old label except for re-review ``noise`` (another category at random) and, with
    ``flip=(a, b, f)``, a share ``f`` of old ``a`` now labelled ``b``."""
    rng = np.random.default_rng(seed)
    pairs = []
    for old in categories:
        for _ in range(per_stratum):
            new = old
            if flip is not None and old == flip[0] and rng.random() < flip[2]:
                new = flip[1]
            elif rng.random() < noise:
                others = [c for c in categories if c != old]
                new = others[int(rng.integers(len(others)))]
            pairs.append((old, new))
    return pairs
