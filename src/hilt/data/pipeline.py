"""The selection pipeline: pure functions from candidates to a dataset's records.

    labels --label_window--> --label_rubric_ids--> --label_rubric_versions-->
      --label_provenance--> --label_min_confidence--> candidates
    candidates --filter--> --consent--> --examples--> --pii--> --exact dedup-->
      --near dedup--> --decontaminate--> --balance--> --split--> records

Every step reports how many items it removed, why, and which ones (event ids before
examples exist, example keys after), and the reports go into the version's manifest.
Decontamination reads the texts of redacted examples as they were before redaction as
well as after.
The label steps (:class:`LabelFilterCounts`) count events too, and the labels
themselves under ``labels``. No database is touched here; :mod:`hilt.data.sources`
feeds it and :mod:`hilt.data.build` stores the result.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hilt.bulk import gc_paused
from hilt.data.balance import assign_splits, balance
from hilt.data.decontam import HeldoutIndex
from hilt.data.examples import (
    candidate_examples,
    conflicting_keys,
    event_feedback_selected,
    label_selected,
    same_replies,
)
from hilt.data.minhash import near_duplicates_of
from hilt.data.pii import PiiDetector, PiiSpan, RegexPiiDetector, invisible_aware, redact
from hilt.data.records import Candidate, Example
from hilt.data.spec import LabelFilter, PiiSpec, SelectionSpec, SplitSpec
from hilt.data.textfeatures import TextFeatures, analyse_texts
from hilt.review.records import FinalLabelRecord


@dataclass
class StepReport:
    step: str
    input: int
    removed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    removed_ids: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    # Label steps only: the labels in, removed and out (their items are events).
    labels: dict[str, int] | None = None

    def drop(self, reason: str, ident: str) -> None:
        self.removed += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self.removed_ids.setdefault(reason, []).append(ident)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "input": self.input, "removed": self.removed,
                "output": self.input - self.removed, "reasons": dict(sorted(self.reasons.items())),
                "removed_ids": {k: sorted(v) for k, v in sorted(self.removed_ids.items())},
                **({"labels": dict(self.labels)} if self.labels is not None else {}),
                **({"notes": self.notes} if self.notes else {})}


@dataclass
class SelectionResult:
    examples: list[Example]
    steps: list[StepReport]

    def manifest_steps(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.steps]


# ``spec.labels``' filters, each a step of its own, in the order they are applied to a
# label: (step, why an event is removed, the filter's fields).
LABEL_STEPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("label_window", "no_label_in_window", ("since", "until")),
    ("label_rubric_ids", "no_label_of_selected_rubric", ("rubric_ids",)),
    ("label_rubric_versions", "no_label_of_selected_rubric_version", ("rubric_versions",)),
    ("label_provenance", "label_provenance_not_selected", ("provenance",)),
    ("label_min_confidence", "label_below_min_confidence", ("min_confidence",)),
)


class LabelFilterCounts:
    """Applies ``spec.labels``' filters to labels one at a time, keeping those that pass
    (by event) and counting, per filter, the labels it excluded and the events it left
    with no label (events that had labels, none of them passing).

    Which labels pass is decided by :func:`~hilt.data.examples.label_selected`, as for
    the examples made later; a label failing several filters is counted by the first in
    :data:`LABEL_STEPS` order, an event by the step that removed its last labels. An
    excluded label is counted and dropped, never kept: memory grows with the labels that
    pass and one small integer per event read, not with what the filters exclude.
    """

    def __init__(self, filt: LabelFilter) -> None:
        self.filt = filt
        # each filter alone, to tell which one a failing label fails
        self._alone = [LabelFilter(**{name: getattr(filt, name) for name in names})
                       for _, _, names in LABEL_STEPS]
        self.kept: dict[str, list[FinalLabelRecord]] = defaultdict(list)
        self._read = 0
        self._removed = [0] * len(LABEL_STEPS)
        # event id -> how many steps its furthest label passed (len(LABEL_STEPS): all)
        self._reached: dict[str, int] = {}

    def add(self, label: FinalLabelRecord) -> None:
        self._read += 1
        last = len(LABEL_STEPS) - 1
        if label_selected(label, self.filt):
            reached = last + 1
            self.kept[label.event_id].append(label)
        else:
            reached = next((i for i, alone in enumerate(self._alone)
                            if not label_selected(label, alone)), last)
            self._removed[reached] += 1
        if reached > self._reached.get(label.event_id, -1):
            self._reached[label.event_id] = reached

    def steps(self, outside_window: tuple[int, int] = (0, 0)) -> list[StepReport]:
        """One report per filter. ``outside_window`` adds the labels decided outside
        the window and the events all of whose labels were, counted where the labels
        are stored instead of read (the window bounds what is read). The window step
        lists no event ids: they would be the store's history outside the window."""
        labels_out, events_out = outside_window
        removed_ids: list[list[str]] = [[] for _ in LABEL_STEPS]
        for event_id, reached in self._reached.items():
            if reached < len(LABEL_STEPS):
                removed_ids[reached].append(event_id)
        labels_in, events_in = self._read + labels_out, len(self._reached) + events_out
        reports = []
        for i, (step, reason, _) in enumerate(LABEL_STEPS):
            labels_removed = self._removed[i] + (labels_out if i == 0 else 0)
            events_removed = len(removed_ids[i]) + (events_out if i == 0 else 0)
            reports.append(StepReport(
                step, events_in, removed=events_removed,
                reasons={reason: events_removed} if events_removed else {},
                removed_ids={reason: removed_ids[i]} if i > 0 and removed_ids[i] else {},
                labels={"input": labels_in, "removed": labels_removed,
                        "output": labels_in - labels_removed}))
            labels_in -= labels_removed
            events_in -= events_removed
        return reports


def filter_candidates(cands: Iterable[Candidate], spec: SelectionSpec
                      ) -> tuple[list[Candidate], StepReport]:
    cands = list(cands)
    report = StepReport("filter", len(cands))
    slices = set(spec.labels.slices) if spec.labels.slices is not None else None
    kept = []
    for c in cands:
        if slices is not None and c.slice not in slices:
            report.drop("slice_not_selected", c.event_id)
        elif not (any(label_selected(lb, spec.labels) for lb in c.labels)
                  or (event_feedback_selected(c, spec.labels) and c.feedback)):
            report.drop("no_selected_label", c.event_id)
        else:
            kept.append(c)
    return kept, report


def require_consent(cands: list[Candidate], spec: SelectionSpec
                    ) -> tuple[list[Candidate], StepReport]:
    """Keep the candidates whose events give the required consent scopes.

    A text answer copied from a near-duplicate's review (a ``cluster_propagated``
    rewrite or free-text label) is the source event's content, so it needs the source
    event's consent too: without it (or when the source is not known) the label is
    removed from the candidate, and counted in ``notes["propagated_text_labels"]``. A
    candidate that is left with nothing to make an example of is removed, with the
    reason ``source_missing_consent``.
    """
    required = frozenset(spec.consent.required_scopes) | {"train"}
    report = StepReport("consent", len(cands), notes={"required_scopes": sorted(required)})
    consent_of = {c.event_id: c.consent for c in cands}
    sources = spec.active_sources()
    label_reasons: dict[str, int] = {}
    label_ids: list[str] = []
    kept = []
    for c in cands:
        missing = required - c.consent
        if c.erased:
            report.drop("erased", c.event_id)
            continue
        if missing:
            report.drop("missing_consent:" + ",".join(sorted(missing)), c.event_id)
            continue
        allowed = []
        for lb in c.labels:
            why = _copied_text_refused(lb, required, consent_of)
            if why is None:
                allowed.append(lb)
            else:
                label_reasons[why] = label_reasons.get(why, 0) + 1
                label_ids.append(lb.label_id)
        if len(allowed) == len(c.labels):
            kept.append(c)
            continue
        had_examples = bool(candidate_examples(c, spec, sources))
        c = replace(c, labels=allowed)
        if had_examples and not candidate_examples(c, spec, sources):
            report.drop("source_missing_consent", c.event_id)
        else:
            kept.append(c)
    if label_ids:
        report.notes["propagated_text_labels"] = {
            "removed": len(label_ids), "reasons": dict(sorted(label_reasons.items())),
            "label_ids": sorted(label_ids)[:LISTED_MAX]}
    return kept, report


# Most ids a step's notes list (the counts next to them are complete).
LISTED_MAX = 100
_TEXT_KINDS = frozenset({"rewrite", "free_text"})


def _copied_text_refused(label: FinalLabelRecord, required: frozenset[str],
                         consent_of: dict[str, frozenset[str]]) -> str | None:
    """Why a text answer copied from another event's review may not be used (else
    None): its source event lacks a required consent scope, or is not known."""
    if label.provenance != "cluster_propagated" or label.question_kind not in _TEXT_KINDS:
        return None
    source = label.source_consent
    if source is None and label.source_event_id is not None:
        source = consent_of.get(label.source_event_id)
    if source is None:
        return "source_consent_unknown"
    missing = required - source
    return "source_missing_consent:" + ",".join(sorted(missing)) if missing else None


def make_examples(cands: list[Candidate], spec: SelectionSpec
                  ) -> tuple[list[Example], StepReport]:
    """The examples of every candidate (a candidate giving none is removed).

    ``notes`` count, next to ``examples``: ``identical_pairs_skipped``, the preference
    pairs not made because both replies are the same text (white space at either end
    aside), by source; ``empty_chosen_pairs_skipped`` (not made) and
    ``empty_rejected_pairs`` (made), the pairs with an empty reply, by source;
    ``conflicting_labels``, the record keys under which one event's
    labels disagree (the records made under ``key`` and ``key#<label id>`` hold
    different labels, completions or pairs): ``count`` and the first
    :data:`LISTED_MAX` ``keys``.
    """
    report = StepReport("examples", len(cands))
    out: list[Example] = []
    sources = spec.active_sources()
    skipped: dict[str, int] = {}
    empty: dict[str, dict[str, int]] = {}
    conflicting: list[str] = []
    for c in cands:
        found = candidate_examples(c, spec, sources, skipped=skipped, empty=empty)
        if not found:
            report.drop(_left_out_by(c, spec, sources) or f"no_{spec.kind}_example",
                        c.event_id)
        conflicting.extend(conflicting_keys(found))
        out.extend(found)
    report.notes["examples"] = len(out)
    if skipped:
        report.notes["identical_pairs_skipped"] = dict(sorted(skipped.items()))
    for note, counts in sorted(empty.items()):
        report.notes[note] = dict(sorted(counts.items()))
    if conflicting:
        report.notes["conflicting_labels"] = {"count": len(conflicting),
                                              "keys": sorted(conflicting)[:LISTED_MAX]}
    return out, report


# Why a candidate with labels gave no example, when a label filter is the cause: which
# filters to lift (field -> lifted value), tried alone first, then together.
_LABEL_FILTERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("label_provenance_not_selected", {"provenance": None}),
    ("label_below_min_confidence", {"min_confidence": 0.0}),
    ("label_provenance_and_confidence", {"provenance": None, "min_confidence": 0.0}),
)


def _left_out_by(c: Candidate, spec: SelectionSpec, sources: tuple[str, ...]) -> str | None:
    """The reason when ``spec.labels``' provenance or confidence filter left out the
    labels the candidate would give examples from (else None).

    A label rewritten to another provenance, or a confidence that fell, drops examples
    as surely as a missing label; saying so in the build steps shows which filter did
    it. Only label-backed examples count: lifting the filters also admits event-level
    feedback, which the spec did not ask about."""
    filt = spec.labels
    for reason, lifted in _LABEL_FILTERS:
        if all(getattr(filt, name) == value for name, value in lifted.items()):
            continue  # this filter is not set: lifting it changes nothing
        relaxed = spec.model_copy(update={"labels": filt.model_copy(update=lifted)})
        if any(ex.labels for ex in candidate_examples(c, relaxed, sources)):
            return reason
    return None


# Texts of redacted examples before redaction, by ``id(example)`` (with the example, so
# that an id reused by another object after an example was dropped never matches).
Unredacted = dict[int, tuple[Example, list[str]]]


def handle_pii(examples: list[Example], spec: SelectionSpec,
               detector: PiiDetector | None = None,
               unredacted: Unredacted | None = None
               ) -> tuple[list[Example], StepReport]:
    """Exclude or redact the examples in which ``detector`` finds personal data.

    The detector reads each text without its invisible format characters, and a
    redacted span covers those inside it (:func:`~hilt.data.pii.invisible_aware`). A
    preference pair whose chosen and rejected replies are the same text once redacted
    (two replies that differed only in an e-mail address) prefers nothing, and would
    show that the replies differed where the data hides how: it is removed, with the
    reason ``pair_equal_after_redaction``.

    ``unredacted``, when given, receives the texts of each redacted example as they were
    before (its :meth:`~Example.texts` and :meth:`~Example.decontamination_parts`), for
    :func:`decontaminate`."""
    detector = invisible_aware(detector or RegexPiiDetector(spec.pii.kinds))
    report = StepReport("pii", len(examples), notes={"action": spec.pii.action})
    kept = []
    redacted = 0
    line_local = bool(getattr(detector, "line_local", False))
    for ex in examples:
        if line_local and not detector.find("\n".join(ex.texts())):
            kept.append(ex)
            continue
        message_hits: dict[int, list[PiiSpan]] = {}
        field_hits: dict[str, list[PiiSpan]] = {}
        for i, m in enumerate(ex.messages):
            spans = detector.find(m["content"])
            if spans:
                message_hits[i] = spans
        for name in Example.TEXT_FIELDS:
            value = getattr(ex, name)
            if value is not None:
                spans = detector.find(value)
                if spans:
                    field_hits[name] = spans
        if not message_hits and not field_hits:
            kept.append(ex)
            continue
        kinds = sorted({s.kind for spans in [*message_hits.values(), *field_hits.values()]
                        for s in spans})
        if spec.pii.action == "exclude":
            report.drop("pii:" + ",".join(kinds), ex.key)
            continue
        fields = {name: redact(getattr(ex, name), spans) for name, spans in field_hits.items()}
        if ex.kind == "preference" and same_replies(fields.get("chosen", ex.chosen or ""),
                                                    fields.get("rejected", ex.rejected or "")):
            report.drop("pair_equal_after_redaction", ex.key)
            continue
        if unredacted is not None:
            unredacted[id(ex)] = (ex, [*ex.texts(), *ex.decontamination_parts()])
        messages = [dict(m) for m in ex.messages]
        for i, spans in message_hits.items():
            messages[i]["content"] = redact(messages[i]["content"], spans)
        for name, value in fields.items():
            setattr(ex, name, value)
        _redact_parts(ex, detector)
        ex.messages, ex.redacted = messages, tuple(kinds)
        redacted += 1
        kept.append(ex)
    report.notes["redacted"] = redacted
    return kept, report


def _redact_parts(ex: Example, detector: PiiDetector) -> None:
    """The prompt and response a classification text is made of get the text's
    treatment: the prompt is written to the record."""
    if ex.text_parts:
        ex.text_parts = tuple(redact(part, detector.find(part)) for part in ex.text_parts)
    if ex.prompt_text is not None:
        ex.prompt_text = redact(ex.prompt_text, detector.find(ex.prompt_text))


def _priority(examples: list[Example]) -> list[Example]:
    """Best first: higher label confidence, then key (for determinism)."""
    return sorted(examples, key=lambda e: (-e.confidence, e.key))


def _features(examples: list[Example], features: TextFeatures | None,
              split: SplitSpec | None = None) -> TextFeatures:
    """The examples' text features, computing them (and the rows) when not given."""
    if features is not None:
        return features
    for row, ex in enumerate(examples):
        ex.text_row = row
    return analyse_texts(examples, split)


def _rows(examples: list[Example]) -> np.ndarray:
    return np.fromiter((ex.text_row for ex in examples), dtype=np.int64, count=len(examples))


def exact_dedup(examples: list[Example], features: TextFeatures | None = None,
                label_conflicts: str = "majority") -> tuple[list[Example], StepReport]:
    """Keep the first example of each (kind, label, field layout, normalised text).

    Records that are the same but for their label (a preference: but for which reply is
    preferred) are a label conflict: left alone, dedup keeps one record of each label,
    and a text that 166 events label ``refuses`` and 6 ``complies`` becomes one of each.
    With ``label_conflicts="majority"`` the label the most records carry stays (equal
    counts: the higher summed confidence) and the records of the others are removed
    with the reason ``label_conflict``; a true tie (equal counts and confidences) keeps
    every tied label. ``"keep_all"`` keeps one record of each label. Labels of different
    questions never conflict. ``notes.label_conflicts`` counts the groups (``groups``,
    ``resolved``, ``ties``) and lists the first :data:`LISTED_MAX` (see
    :func:`_resolve_conflicts`).
    """
    features = _features(examples, features)
    digests = features.exact_digests
    report = StepReport("exact_dedup", len(examples))
    losers = _resolve_conflicts(examples, features, label_conflicts, report)
    seen: set[bytes] = set()
    kept = []
    for ex in examples:
        digest = digests[ex.text_row]
        if id(ex) in losers:
            report.drop("label_conflict", ex.key)
        elif digest in seen:
            report.drop("exact_duplicate", ex.key)
        else:
            seen.add(digest)
            kept.append(ex)
    return kept, report


# What identical records can disagree on: the label, or which reply is preferred.
_Side = tuple[str | None, bool]


def _resolve_conflicts(examples: list[Example], features: TextFeatures, rule: str,
                       report: StepReport) -> set[int]:
    """The ``id()`` of the records a label conflict removes (see :func:`exact_dedup`),
    noting the conflicts in ``report``.

    Each listed group gives, per label (``key``: its best record, which dedup keeps),
    how many ``records`` carry it, their summed ``confidence`` and whether it is
    ``kept``; its ``outcome`` is ``majority``, ``tie`` or ``keep_all``. ``examples``
    come best first, so a label's first record is its best."""
    groups, swapped = features.group_digests, features.swapped

    def side(ex: Example) -> _Side:
        return ex.label, swapped[ex.text_row]

    first: dict[tuple[bytes, str], _Side] = {}
    conflicted: set[tuple[bytes, str]] = set()
    for ex in examples:
        group = (groups[ex.text_row], _question(ex))
        if first.setdefault(group, side(ex)) != side(ex):
            conflicted.add(group)
    if not conflicted:
        return set()
    members: dict[tuple[bytes, str], dict[_Side, list[Example]]] = {}
    for ex in examples:
        group = (groups[ex.text_row], _question(ex))
        if group in conflicted:
            members.setdefault(group, {}).setdefault(side(ex), []).append(ex)
    losers: set[int] = set()
    listed: list[dict[str, Any]] = []
    outcomes = {"majority": 0, "tie": 0, "keep_all": 0}
    for by_side in members.values():
        weight = {s: (len(exs), math.fsum(ex.confidence for ex in exs))
                  for s, exs in by_side.items()}
        best = max(weight.values())
        winners = set(by_side) if rule == "keep_all" else \
            {s for s, w in weight.items() if w == best}
        outcome = "keep_all" if rule == "keep_all" else \
            "tie" if len(winners) > 1 else "majority"
        outcomes[outcome] += 1
        for s, exs in by_side.items():
            if s not in winners:
                losers.update(id(ex) for ex in exs)
        listed.append({"outcome": outcome, "labels": sorted(
            ({"key": exs[0].key, **({"label": s[0]} if s[0] is not None else {}),
              "records": weight[s][0], "confidence": round(weight[s][1], 6),
              "kept": s in winners} for s, exs in by_side.items()),
            key=lambda entry: (-entry["records"], -entry["confidence"], entry["key"]))})
    listed.sort(key=lambda g: g["labels"][0]["key"])
    report.notes["label_conflicts"] = {
        "rule": rule, "groups": len(members), "resolved": outcomes["majority"],
        "ties": outcomes["tie"], "listed": listed[:LISTED_MAX]}
    return losers


def _question(ex: Example) -> str:
    """The question a record's label answers (labels of two questions about one text do
    not conflict): the labels' question, or an event-level label's name."""
    if ex.labels:
        return ",".join(sorted({lb.question_id for lb in ex.labels}))
    return ex.feedback_name or ""


def near_dedup(examples: list[Example], spec: SelectionSpec,
               features: TextFeatures | None = None) -> tuple[list[Example], StepReport]:
    cfg = spec.dedup
    report = StepReport("near_dedup", len(examples), notes={
        "threshold": cfg.threshold, "num_perm": cfg.num_perm,
        "shingle_words": cfg.shingle_words, "seed": cfg.seed})
    if not examples:
        return examples, report
    feats = _features(examples, features)
    rows = _rows(examples)
    # Near-duplicates with different labels are kept apart: they are not redundant
    # copies of one example (classification labels must agree to merge). Each label's
    # records are clustered on their own, so the best record of each label in a group of
    # similar texts is kept, whatever other labels the group holds.
    label_ids: dict[str | None, int] = {}
    groups = np.fromiter((label_ids.setdefault(ex.label, len(label_ids)) for ex in examples),
                         dtype=np.int64, count=len(examples))
    result = near_duplicates_of(len(examples), lambda idx: feats.example_words(rows[idx]),
                                threshold=cfg.threshold, num_perm=cfg.num_perm,
                                shingle_words=cfg.shingle_words, seed=cfg.seed,
                                groups=groups if len(label_ids) > 1 else None)
    dup = result.duplicate_of.tolist()
    kept = []
    conflicts: list[list[str]] = []
    # Per cluster (by its first record), the records kept: the first, and for
    # preferences the first of each other direction. A record is a duplicate of the
    # kept one it does not oppose, so a copy of an opposing pair is dropped too.
    kept_of: dict[int, list[int]] = {}
    for i, (ex, of) in enumerate(zip(examples, dup, strict=True)):
        if of < 0:
            kept.append(ex)
            kept_of[i] = [i]
            continue
        if ex.kind != "preference" or any(
                not _opposite_preferences(feats, examples[k], ex) for k in kept_of[of]):
            report.drop("near_duplicate", ex.key)
            continue
        # MinHash reads all fields as one word sequence, so P + (a, b) and P + (b, a)
        # look alike; keeping either one alone would silently decide the conflict.
        # Both stay and the pair is reported.
        kept.append(ex)
        kept_of[of].append(i)
        conflicts.append([examples[of].key, ex.key])
    report.notes["similar_pairs"] = int(len(result.pairs))
    if conflicts:
        report.notes["conflicting_preferences"] = sorted(conflicts)
    return kept, report


def _jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _opposite_preferences(feats: TextFeatures, a: Example, b: Example) -> bool:
    """Whether B's chosen response resembles A's rejected one (and B's rejected A's
    chosen) more than the responses on the same side resemble each other."""
    ca, ra = feats.last_field_words(a.text_row, 2), feats.last_field_words(a.text_row, 1)
    cb, rb = feats.last_field_words(b.text_row, 2), feats.last_field_words(b.text_row, 1)
    return _jaccard(ca, rb) + _jaccard(ra, cb) > _jaccard(ca, cb) + _jaccard(ra, rb)


def decontaminate(examples: list[Example], index: HeldoutIndex,
                  features: TextFeatures | None = None, batch: int = 8192, *,
                  unredacted: Unredacted | None = None
                  ) -> tuple[list[Example], StepReport]:
    """Drop every example one of whose fields overlaps a held-out text (the n-gram
    hashes of its fields are looked up in the index's hash set).

    ``unredacted`` (from :func:`handle_pii`) holds the texts of redacted examples as
    they were before redaction; they are checked too, so that redacting an e-mail
    address or a phone number inside a held-out text does not hide it. The report
    names, under ``notes.matched_items``, the held-out item each removed example
    matched (one of them when it matches several)."""
    report = StepReport("decontaminate", len(examples), notes={
        "ngram": index.ngram, "min_short_words": index.min_short_words,
        "heldout_items": len(index)})
    feats = _features(examples, features)
    rows = _rows(examples)
    kept = []
    matched: list[dict[str, str]] = []
    before_redaction = 0
    for lo in range(0, len(examples), batch):
        chunk = examples[lo:lo + batch]
        fields, owner = feats.field_words(rows[lo:lo + batch])
        hits = index.match_words(fields)
        bad: dict[int, int] = {}
        for f in np.flatnonzero(hits >= 0).tolist():
            bad.setdefault(int(owner[f]), int(hits[f]))
        _match_parts(chunk, index, bad)
        if unredacted:
            found = len(bad)
            _match_unredacted(chunk, index, bad, unredacted)
            before_redaction += len(bad) - found
        for i, ex in enumerate(chunk):
            if i in bad:
                item = index.items[bad[i]]
                report.drop(f"heldout:{item.suite_id}", ex.key)
                matched.append({"record_key": ex.key, "suite_id": item.suite_id,
                                "item_id": item.item_id})
            else:
                kept.append(ex)
    if matched:
        report.notes["matched_items"] = sorted(matched, key=lambda m: m["record_key"])
    if unredacted is not None:
        report.notes["matched_before_redaction"] = before_redaction
    return kept, report


def _match_unredacted(chunk: list[Example], index: HeldoutIndex, bad: dict[int, int],
                      unredacted: Unredacted) -> None:
    """Add to ``bad`` the redacted examples (by position) whose text before redaction
    overlaps a held-out text."""
    texts: list[str] = []
    owner: list[int] = []
    for i, ex in enumerate(chunk):
        entry = unredacted.get(id(ex)) if i not in bad else None
        if entry is not None and entry[0] is ex:
            texts.extend(entry[1])
            owner.extend([i] * len(entry[1]))
    if not texts:
        return
    hits = index.match(texts)
    for f in np.flatnonzero(hits >= 0).tolist():
        bad.setdefault(owner[f], int(hits[f]))


def _match_parts(chunk: list[Example], index: HeldoutIndex, bad: dict[int, int]) -> None:
    """Add to ``bad`` the examples (by position) one of whose
    :meth:`~hilt.data.records.Example.decontamination_parts` overlaps a held-out text."""
    parts: list[str] = []
    owner: list[int] = []
    for i, ex in enumerate(chunk):
        if i not in bad:
            for part in ex.decontamination_parts():
                parts.append(part)
                owner.append(i)
    if not parts:
        return
    hits = index.match(parts)
    for f in np.flatnonzero(hits >= 0).tolist():
        bad.setdefault(owner[f], int(hits[f]))


def heldout_forms(heldout: Iterable[tuple[str, str, str]], pii: PiiSpec,
                  detector: PiiDetector | None = None) -> Iterator[tuple[str, str, str]]:
    """The held-out texts to index for a selection with PII settings ``pii`` (a spec's
    ``pii`` section), as (suite id, item id, text).

    Each text as registered, and with ``action: redact`` also, under the same ids,
    each text in which ``detector`` (by default the regex detector of ``pii.kinds``)
    finds personal data, redacted as a record field is. A redacted record then matches
    the held-out text it was copied from even where only its redacted form is at hand
    (re-checking a stored version), and the selection removes every record such a
    re-check would find."""
    redacting = pii.action == "redact"
    if redacting:
        detector = invisible_aware(detector or RegexPiiDetector(pii.kinds))
    for suite_id, item_id, text in heldout:
        yield suite_id, item_id, text
        if redacting and detector is not None:
            spans = detector.find(text)
            if spans:
                yield suite_id, item_id, redact(text, spans)


def run_selection(candidates: Iterable[Candidate], spec: SelectionSpec,
                  heldout: HeldoutIndex | Iterable[tuple[str, str, str]], *,
                  detector: PiiDetector | None = None,
                  timings: dict[str, float] | None = None,
                  label_steps: Sequence[StepReport] = ()) -> SelectionResult:
    """Run every step; the examples come back in a canonical order (by key).

    ``timings``, when given, receives the seconds each step took; ``label_steps``
    (:meth:`LabelFilterCounts.steps` of the labels the candidates carry) come first
    in the result's steps. Held-out texts given as tuples are indexed with
    :func:`heldout_forms`; a ready index is used as it is.
    """
    with gc_paused():
        return _run_selection(candidates, spec, heldout, detector, timings, label_steps)


def _run_selection(candidates: Iterable[Candidate], spec: SelectionSpec,
                   heldout: HeldoutIndex | Iterable[tuple[str, str, str]],
                   detector: PiiDetector | None, timings: dict[str, float] | None,
                   label_steps: Sequence[StepReport]) -> SelectionResult:
    clock = _Clock(timings)
    detector = detector or RegexPiiDetector(spec.pii.kinds)
    index = heldout if isinstance(heldout, HeldoutIndex) else HeldoutIndex(
        heldout_forms(heldout, spec.pii, detector), ngram=spec.decontamination.ngram,
        min_short_words=spec.decontamination.min_short_words)
    clock.lap("heldout_index")
    steps: list[StepReport] = list(label_steps)
    cands, rep = filter_candidates(candidates, spec)
    steps.append(rep)
    clock.lap("filter")
    cands, rep = require_consent(cands, spec)
    steps.append(rep)
    clock.lap("consent")
    examples, rep = make_examples(cands, spec)
    steps.append(rep)
    del cands
    clock.lap("examples")
    # The texts of redacted examples as they were: decontamination checks them too.
    unredacted: Unredacted = {}
    examples, rep = handle_pii(examples, spec, detector, unredacted)
    steps.append(rep)
    clock.lap("pii")
    # Texts are final from here on (PII redacted): tokenise them once for every step.
    features = _features(examples, None, spec.split)
    clock.lap("tokenise")
    examples = _priority(examples)
    if spec.dedup.exact:
        examples, rep = exact_dedup(examples, features, spec.dedup.label_conflicts)
        steps.append(rep)
    clock.lap("exact_dedup")
    if spec.dedup.near:
        examples, rep = near_dedup(examples, spec, features)
        steps.append(rep)
    clock.lap("near_dedup")
    examples, rep = decontaminate(examples, index, features,
                                  unredacted=unredacted if spec.pii.action == "redact" else None)
    del unredacted
    steps.append(rep)
    clock.lap("decontaminate")
    before = len(examples)
    examples, removed = balance(examples, spec.balance)
    rep = StepReport("balance", before, removed=before - len(examples),
                     reasons={k: len(v) for k, v in removed.items()}, removed_ids=removed,
                     notes={"strategy": spec.balance.strategy})
    steps.append(rep)
    clock.lap("balance")
    examples.sort(key=lambda e: e.key)
    units = features.prompt_units
    split_notes: dict[str, Any] = {}
    counts = assign_splits(examples, spec.split, unit_of=None if units is None
                           else lambda ex: float(units[ex.text_row]), notes=split_notes)
    slices: dict[str, int] = defaultdict(int)
    for ex in examples:
        slices[ex.slice] += 1
    steps.append(StepReport("split", len(examples), notes={
        "counts": counts, "slices": dict(sorted(slices.items())),
        "validation_fraction": spec.split.validation_fraction,
        "group_by": spec.split.group_by, **split_notes}))
    clock.lap("split")
    return SelectionResult(examples, steps)


class _Clock:
    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink, self.last = sink, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.sink is not None:
            self.sink[name] = self.sink.get(name, 0.0) + now - self.last
        self.last = now


def records_of(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [ex.to_record() for ex in examples]
