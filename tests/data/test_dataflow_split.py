"""A prompt-grouped split keeps the records of one conversation on one side."""

from __future__ import annotations

from typing import Any

from data_factories import make_candidate, make_label

from hilt.data.balance import assign_splits, unit_hash
from hilt.data.ngrams import normalise
from hilt.data.pipeline import run_selection
from hilt.data.spec import SplitSpec, parse_spec

REPLY = "Sure: pick a theme, invite friends, order a cake."


def _sft(eid: str, messages: list[dict[str, str]], completion: str) -> Any:
    c = make_candidate(eid, "x", [completion], labels=[make_label(
        eid, "approve", kind="single_choice", question="ok")])
    c.messages = messages
    return c


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _spec(kind: str = "sft", fraction: float = 0.5, **extra: Any) -> Any:
    more = {"sft": {"approval_question": "ok"}} if kind == "sft" else {}
    return parse_spec({"name": "s", "kind": kind, "dedup": {"near": False},
                       "split": {"validation_fraction": fraction}, **more, **extra})


def _splits(result: Any) -> dict[str, str]:
    return {ex.event_id: ex.split for ex in result.examples}


def _opening(k: int) -> str:
    return f"Can you help me plan a birthday party for my daughter number {k}"


def test_a_conversation_continuing_a_record_shares_its_split() -> None:
    both_sides = 0
    for k in range(60):
        p1 = _opening(k)
        single = _sft(f"a{k}", [_user(p1)], REPLY)
        continued = _sft(f"b{k}", [_user(p1), _assistant(REPLY), _user("What theme?")],
                         "Pirates.")
        # the same exchange inside a later conversation, after other turns
        inside = _sft(f"c{k}", [{"role": "system", "content": "Be kind"}, _user("hello"),
                                _assistant("hi"), _user(p1), _assistant(REPLY),
                                _user("And the cake?")], "Chocolate.")
        result = run_selection([single, continued, inside], _spec(), [])
        sides = _splits(result)
        assert len(set(sides.values())) == 1, (k, sides)
        # all take the opening record's split
        u = unit_hash("hilt", normalise(p1))
        assert sides[f"a{k}"] == ("validation" if u < 0.5 else "train")
        both_sides += sides[f"a{k}"] == "validation"
        split = next(s for s in result.steps if s.step == "split")
        assert split.notes["joined_to_conversation"] == 2
    assert 0 < both_sides < 60


def _prompt_split(prompt: str, fraction: float = 0.5) -> str:
    return "validation" if unit_hash("hilt", normalise(prompt)) < fraction else "train"


def test_records_joined_to_no_conversation_keep_the_split_of_their_own_prompt() -> None:
    """Conversations that only open alike, an exchange whose reply differs, and a
    prompt that merely mentions another are not joined."""
    records, expected = [], {}
    for k in range(30):
        p1 = _opening(k)
        a = [_user("hi"), _assistant("Hello!"), _user(p1)]
        b = [_user("hi"), _assistant("Hey there."), _user(f"Tell me a joke number {k}")]
        other_reply = [_user("start"), _assistant("ok"), _user(p1),
                       _assistant("Something else entirely."), _user("and?")]
        for eid, msgs in ((f"a{k}", a), (f"b{k}", b), (f"o{k}", other_reply)):
            records.append(_sft(eid, msgs, "Fine."))
            expected[eid] = _prompt_split("\n".join(f"{m['role']}: {m['content']}"
                                                    for m in msgs))
        records.append(_sft(f"m{k}", [_user(f"About '{p1}': any tips?")], REPLY))
        expected[f"m{k}"] = _prompt_split(f"About '{p1}': any tips?")
        records.append(_sft(f"s{k}", [_user(p1)], REPLY))  # answered otherwise above
        expected[f"s{k}"] = _prompt_split(p1)
    result = run_selection(records, _spec(), [])
    assert _splits(result) == expected
    split = next(s for s in result.steps if s.step == "split")
    assert split.notes["joined_to_conversation"] == 0


def test_preference_and_classification_conversations_are_joined() -> None:
    for k in range(30):
        p1 = _opening(k)
        prefs = []
        for eid, msgs in ((f"a{k}", [_user(p1)]),
                          (f"b{k}", [_user("hey"), _assistant(REPLY.upper()), _user(p1),
                                     _assistant("No idea, sorry!"), _user("Please?")])):
            c = make_candidate(eid, "x", [REPLY, "No idea, sorry!"],
                               labels=[make_label(eid, {"chosen": 0, "rejected": 1})])
            c.messages = msgs
            prefs.append(c)
        sides = _splits(run_selection(prefs, _spec("preference"), []))
        assert len(set(sides.values())) == 1, (k, sides)
        cls = []
        for eid, msgs in ((f"a{k}", [_user(p1)]),
                          (f"b{k}", [_user(p1), _assistant(REPLY), _user("Thanks")])):
            c = make_candidate(eid, "x", ["whatever"], labels=[make_label(
                eid, "safe", kind="single_choice", question="harm")])
            c.messages = msgs
            cls.append(c)
        for text in ("prompt", "response", "prompt_response"):
            spec = _spec("classification", classification={"text": text})
            sides = _splits(run_selection(cls, spec, []))
            assert len(set(sides.values())) == 1, (k, text, sides)


def test_assign_splits_without_precomputed_units_joins_conversations() -> None:
    records = []
    for k in range(40):
        p1 = _opening(k)
        records += [_sft(f"a{k}", [_user(p1)], REPLY),
                    _sft(f"b{k}", [_user(p1), _assistant(REPLY), _user("More?")], "Yes.")]
    examples = run_selection(records, _spec(), []).examples
    before = _splits_of(examples)
    for ex in examples:
        ex.split = "unset"
    assign_splits(examples, SplitSpec(validation_fraction=0.5, group_by="prompt"))
    assert _splits_of(examples) == before
    for k in range(40):
        assert before[f"a{k}"] == before[f"b{k}"]


def _splits_of(examples: list[Any]) -> dict[str, str]:
    return {ex.event_id: ex.split for ex in examples}
