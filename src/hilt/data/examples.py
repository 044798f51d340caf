"""From candidates to training examples, one function per output kind.

Preference pairs come from an event's own preference feedback, from a rewrite (the
rewritten response is preferred to the original one) and from preference or ranking
labels (a ranking r_1 > r_2 > ... > r_k yields every pair r_i > r_j, i < j, the usual
reduction of rankings to pairwise comparisons, Ouyang et al. 2022 section 3.5).
Demonstrations for SFT are the prompt with an approved or rewritten response, keeping the
prompt template and role format the response was produced under. Classification
examples are a text and its label.

Rewrite labels carry no response index; they refer to the first response (index 0),
which is what the review stage shows as "the response" of a single-response event.

Every label gives its own records. Two labels of one event that give the same key (a
re-review under a new rubric version, a second task) are one record only when they are
repeats; otherwise each stays a record under a key of its own (:func:`distinct_keys`),
so that no label is silently dropped in favour of another; :func:`conflicting_keys`
names the keys under which such labels disagree.

A preference pair whose two replies are the same text (white space at either end aside,
as training compares them) prefers nothing and is not made; ``skipped`` counts them.
A pair whose chosen reply is empty (or only white space) is not made either: training
on it would teach that saying nothing is the better reply, which no review means (a
reviewer who wants neither reply writes a rewrite, and an empty rewrite is no rewrite).
A pair whose rejected reply is empty is made, since preferring any reply to none is a
sound preference; ``empty`` counts both kinds (:data:`EMPTY_CHOSEN_SKIPPED`,
:data:`EMPTY_REJECTED`), so that a build shows how many of its pairs have them.
A pair whose replies become the same text only when personal data is redacted is
removed by the PII step (:func:`hilt.data.pipeline.handle_pii`), where redaction
happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from hilt.data.records import Candidate, Example, render_prompt
from hilt.data.spec import LabelFilter, SelectionSpec
from hilt.review.records import FinalLabelRecord

# An example and what tells it apart from others under its key: the label id of a
# label-backed example, the feedback index of an event-level one.
Stated = tuple[Example, str]
# Counts of pairs with an empty reply, by source: those not made (empty chosen reply)
# and those made (empty rejected reply).
EMPTY_CHOSEN_SKIPPED = "empty_chosen_pairs_skipped"
EMPTY_REJECTED = "empty_rejected_pairs"


def label_selected(label: FinalLabelRecord, filt: LabelFilter) -> bool:
    if filt.since is not None and _aware(label.decided_at) < _aware(filt.since):
        return False
    if filt.until is not None and _aware(label.decided_at) >= _aware(filt.until):
        return False
    if filt.rubric_ids is not None and label.rubric_id not in filt.rubric_ids:
        return False
    if filt.rubric_versions is not None and label.rubric_version not in filt.rubric_versions:
        return False
    if filt.provenance is not None and label.provenance not in filt.provenance:
        return False
    return label.confidence >= filt.min_confidence


def event_feedback_selected(candidate: Candidate, filt: LabelFilter) -> bool:
    """Event-level feedback has no rubric, provenance or confidence: it is used only when
    the spec does not restrict those, and only inside the time range."""
    if filt.rubric_ids is not None or filt.rubric_versions is not None \
            or filt.provenance is not None or filt.min_confidence > 0:
        return False
    stamp = _aware(candidate.created_at)
    if filt.since is not None and stamp < _aware(filt.since):
        return False
    return not (filt.until is not None and stamp >= _aware(filt.until))


def _aware(stamp: datetime) -> datetime:
    from datetime import UTC

    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _base(c: Candidate, key: str, kind: str, source: str,
          labels: tuple[FinalLabelRecord, ...], confidence: float,
          messages: list[dict[str, str]] | None = None) -> Example:
    return Example(key=key, kind=kind, source=source, event_id=c.event_id,
                   subject_id=c.subject_id,
                   messages=c.messages if messages is None else messages,  # type: ignore[arg-type]
                   slice=c.slice, template=c.template, labels=labels,
                   policy_version=c.policy_version, confidence=confidence)


def _pair(c: Candidate, key: str, source: str, chosen: str, rejected: str,
          labels: tuple[FinalLabelRecord, ...] = (), confidence: float = 1.0) -> Example:
    ex = _base(c, key, "preference", source, labels, confidence)
    ex.chosen, ex.rejected = chosen, rejected
    return ex


def same_replies(chosen: str, rejected: str) -> bool:
    """Whether a pair's two replies are one text (the test training refuses pairs by)."""
    return chosen.strip() == rejected.strip()


def _skip(skipped: dict[str, int] | None, source: str) -> None:
    if skipped is not None:
        skipped[source] = skipped.get(source, 0) + 1


def _makes_pair(chosen: str, rejected: str, source: str, skipped: dict[str, int] | None,
                empty: dict[str, dict[str, int]] | None) -> bool:
    """Whether the pair is made (see the module docstring), counting it in ``skipped``
    or ``empty`` when one of its replies is empty or both are the same text."""
    if same_replies(chosen, rejected):
        _skip(skipped, source)
        return False
    for reply, note in ((chosen, EMPTY_CHOSEN_SKIPPED), (rejected, EMPTY_REJECTED)):
        if not reply.strip():
            _skip(None if empty is None else empty.setdefault(note, {}), source)
    return bool(chosen.strip())


def _response(c: Candidate, index: Any) -> str | None:
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(c.responses):
        return c.responses[index]
    return None


def _qid(label: FinalLabelRecord) -> str:
    return f"{label.rubric_id}/{label.question_id}"


def preference_examples(c: Candidate, labels: list[FinalLabelRecord], use_event: bool,
                        sources: tuple[str, ...],
                        skipped: dict[str, int] | None = None,
                        empty: dict[str, dict[str, int]] | None = None) -> Iterator[Stated]:
    """Pairs of every preference source; ``skipped`` (by source) counts those not made
    because both replies are the same text, ``empty`` (by note, then source) those with
    an empty reply (see the module docstring)."""
    eid = c.event_id
    if use_event:
        for i, fb in enumerate(c.feedback):
            if fb.get("kind") == "preference" and "event_preference" in sources:
                ch, rj = _response(c, fb.get("chosen")), _response(c, fb.get("rejected"))
                if ch is not None and rj is not None \
                        and _makes_pair(ch, rj, "event_preference", skipped, empty):
                    lo, hi = sorted((fb["chosen"], fb["rejected"]))
                    yield _pair(c, f"pref:{eid}:event#{i}:{lo}-{hi}", "event_preference", ch,
                                rj), str(i)
            elif fb.get("kind") == "edit" and "event_edit" in sources:
                idx = fb.get("response_index", 0)
                original = _response(c, idx)
                if original is not None \
                        and _makes_pair(fb["text"], original, "event_edit", skipped, empty):
                    yield _pair(c, f"pref:{eid}:edit#{i}:{idx}", "event_edit", fb["text"],
                                original), str(i)
    for lb in labels:
        one = (lb,)
        if lb.question_kind == "preference" and "label_preference" in sources \
                and isinstance(lb.value, dict):
            ch, rj = _response(c, lb.value.get("chosen")), _response(c, lb.value.get("rejected"))
            if ch is not None and rj is not None \
                    and _makes_pair(ch, rj, "label_preference", skipped, empty):
                lo, hi = sorted((lb.value["chosen"], lb.value["rejected"]))
                yield _pair(c, f"pref:{eid}:{_qid(lb)}:{lo}-{hi}", "label_preference", ch, rj,
                            one, lb.confidence), lb.label_id
        elif lb.question_kind == "ranking" and "label_ranking" in sources \
                and isinstance(lb.value, list | tuple):
            order = [i for i in lb.value if _response(c, i) is not None]
            for a, better in enumerate(order):
                for worse in order[a + 1:]:
                    if not _makes_pair(c.responses[better], c.responses[worse],
                                       "label_ranking", skipped, empty):
                        continue
                    lo, hi = sorted((better, worse))
                    yield _pair(c, f"pref:{eid}:{_qid(lb)}:{lo}-{hi}", "label_ranking",
                                c.responses[better], c.responses[worse], one,
                                lb.confidence), lb.label_id
        elif lb.question_kind == "rewrite" and "label_rewrite" in sources \
                and isinstance(lb.value, str):
            original = _response(c, 0)
            # an empty rewrite is no rewrite (as for SFT): not counted as a pair
            if original is not None and lb.value.strip() \
                    and _makes_pair(lb.value, original, "label_rewrite", skipped, empty):
                yield _pair(c, f"pref:{eid}:{_qid(lb)}:rewrite", "label_rewrite", lb.value,
                            original, one, lb.confidence), lb.label_id


def _approved(lb: FinalLabelRecord, spec: SelectionSpec) -> bool:
    if spec.sft.approval_question is None or lb.question_id != spec.sft.approval_question:
        return False
    if isinstance(lb.value, str):
        return lb.value in spec.sft.approve_values
    if isinstance(lb.value, int | float) and spec.sft.min_scale is not None:
        return float(lb.value) >= spec.sft.min_scale
    return False


def sft_examples(c: Candidate, labels: list[FinalLabelRecord], use_event: bool,
                 spec: SelectionSpec, sources: tuple[str, ...]) -> Iterator[Stated]:
    eid = c.event_id

    def demo(key: str, source: str, completion: str, lbs: tuple[FinalLabelRecord, ...],
             confidence: float) -> Example:
        ex = _base(c, key, "sft", source, lbs, confidence)
        ex.completion = completion
        return ex

    if use_event and "event_edit" in sources:
        for i, fb in enumerate(c.feedback):
            if fb.get("kind") == "edit" and fb.get("text", "").strip():
                yield demo(f"sft:{eid}:edit#{i}", "event_edit", fb["text"], (), 1.0), str(i)
    for lb in labels:
        if lb.question_kind == "rewrite" and "label_rewrite" in sources \
                and isinstance(lb.value, str) and lb.value.strip():
            yield demo(f"sft:{eid}:{_qid(lb)}:rewrite", "label_rewrite", lb.value, (lb,),
                       lb.confidence), lb.label_id
        elif "label_approval" in sources and _approved(lb, spec) and c.responses:
            yield demo(f"sft:{eid}:{_qid(lb)}:approved", "label_approval", c.responses[0],
                       (lb,), lb.confidence), lb.label_id


def classification_examples(c: Candidate, labels: list[FinalLabelRecord], use_event: bool,
                            spec: SelectionSpec, sources: tuple[str, ...]
                            ) -> Iterator[Stated]:
    cfg = spec.classification
    prompt = render_prompt(c.messages or [])
    response = c.responses[0] if c.responses else ""
    text = {"prompt": prompt, "response": response,
            "prompt_response": f"{prompt}\n{response}"}[cfg.text]
    if cfg.text != "prompt" and not c.responses:
        return

    def example(key: str, source: str, value: str, lbs: tuple[FinalLabelRecord, ...],
                confidence: float, scale: bool = False) -> Example:
        ex = _base(c, key, "classification", source, lbs, confidence, messages=[])
        ex.text, ex.label = text, _mapped(cfg.label_map, value, scale)
        ex.prompt_text = prompt
        if cfg.text == "prompt_response":
            ex.text_parts = (prompt, response)
        return ex

    for lb in labels:
        if "label_class" in sources and lb.question_kind in ("single_choice", "scale") \
                and (cfg.question_id is None or lb.question_id == cfg.question_id):
            yield example(f"cls:{c.event_id}:{_qid(lb)}:{cfg.text}", "label_class",
                          str(lb.value), (lb,), lb.confidence,
                          scale=lb.question_kind == "scale"), lb.label_id
    if use_event and "event_label" in sources:
        for i, fb in enumerate(c.feedback):
            if fb.get("kind") == "label" and (cfg.question_id is None
                                               or fb.get("name") == cfg.question_id):
                ex = example(f"cls:{c.event_id}:event/{fb['name']}:{cfg.text}",
                             "event_label", str(fb["value"]), (), 1.0)
                ex.feedback_name = str(fb["name"])
                yield ex, str(i)


def _mapped(label_map: dict[str, str], value: str, scale: bool) -> str:
    """The label ``label_map`` gives ``value``; a scale point matches a key that is the
    same number (``4`` for the stored ``4.0``)."""
    if value in label_map:
        return label_map[value]
    if scale and label_map:
        for key, name in label_map.items():
            try:
                if float(key) == float(value):
                    return name
            except ValueError:
                continue
    return value


def candidate_examples(c: Candidate, spec: SelectionSpec,
                       sources: tuple[str, ...] | None = None, *,
                       skipped: dict[str, int] | None = None,
                       empty: dict[str, dict[str, int]] | None = None) -> list[Example]:
    """Every example of the spec's kind that this candidate yields (possibly none).

    ``sources``: ``spec.active_sources()``, passed in by callers that loop over many
    candidates. ``skipped``, when given, counts (by source) the preference pairs not
    made because both replies are the same text; ``empty``, the pairs with an empty
    reply, under :data:`EMPTY_CHOSEN_SKIPPED` (not made) and :data:`EMPTY_REJECTED`
    (made), each by source. Keys are unique: see :func:`distinct_keys` for labels that
    give the same key."""
    labels = [lb for lb in c.labels if label_selected(lb, spec.labels)]
    use_event = event_feedback_selected(c, spec.labels)
    if sources is None:
        sources = spec.active_sources()
    if spec.kind == "preference":
        found = list(preference_examples(c, labels, use_event, sources, skipped, empty))
    elif spec.kind == "sft":
        found = list(sft_examples(c, labels, use_event, spec, sources))
    else:
        found = list(classification_examples(c, labels, use_event, spec, sources))
    return distinct_keys(c, found)


def distinct_keys(c: Candidate, found: list[Stated]) -> list[Example]:
    """One example per statement, each under a key of its own.

    Examples that share a key are repeats when they say the same thing on the same
    grounds: the same record content (label, chosen and rejected, completion) from the
    same rubric, rubric version, question and task (for event-level feedback, the same
    content). Repeats collapse into the one with the highest confidence. Statements that
    differ (another value, rubric version or task) each stay a record: the first stated
    (earliest ``decided_at``, then label id; event-level feedback: feedback order) keeps
    the key, every other one gets ``#`` and its label id (event-level feedback: its
    index in the event's feedback) appended. A key given by one statement only is left
    as it is, and so are the records and version ids of selections without such labels.
    """
    if len(found) < 2:
        return [ex for ex, _ in found]
    groups: dict[str, list[tuple[int, Example, str]]] = {}
    for pos, (ex, tag) in enumerate(sorted(found, key=lambda item: -item[0].confidence)):
        groups.setdefault(ex.key, []).append((pos, ex, tag))
    out: list[Example] = []
    for key, group in groups.items():
        if len(group) == 1:
            out.append(group[0][1])
            continue
        statements: dict[tuple[Any, ...], tuple[int, Example, str]] = {}
        for item in group:  # highest confidence first: a repeat keeps the best one
            statements.setdefault(_statement(item[1]), item)
        first, *others = sorted(statements.values(), key=lambda item: _stated_at(c, item))
        out.append(first[1])
        for _, ex, tag in others:
            ex.key = f"{key}#{tag}"
            out.append(ex)
    return out


def conflicting_keys(examples: list[Example]) -> list[str]:
    """The keys under which one candidate's examples (from :func:`candidate_examples`)
    disagree: the record under ``key`` and one under ``key#<tag>`` that
    :func:`distinct_keys` made of another label for the same key hold different
    content (label, completion, chosen or rejected). Records that differ only in the
    rubric version or task they were decided under are not a conflict."""
    keys = {ex.key for ex in examples}
    content: dict[str, set[tuple[Any, ...]]] = {}
    for ex in examples:
        base = next((ex.key[:i] for i, ch in enumerate(ex.key)
                     if ch == "#" and ex.key[:i] in keys), ex.key)
        content.setdefault(base, set()).add(
            (ex.label, ex.completion, ex.chosen, ex.rejected))
    return sorted(key for key, said in content.items() if len(said) > 1)


def _statement(ex: Example) -> tuple[Any, ...]:
    """What an example says and on which grounds: equal for repeats only."""
    return (ex.source, ex.chosen, ex.rejected, ex.completion, ex.label,
            tuple(sorted((lb.rubric_id, lb.rubric_version, lb.question_id, lb.task_id)
                         for lb in ex.labels)))


def _stated_at(c: Candidate, item: tuple[int, Example, str]) -> tuple[datetime, str, int]:
    """Order of statements under one key: when decided, then label id (event-level
    feedback: the event's creation, then feedback order)."""
    pos, ex, tag = item
    if ex.labels:
        return min(_aware(lb.decided_at) for lb in ex.labels), tag, pos
    return _aware(c.created_at), "", int(tag) if tag.isdigit() else pos
