"""A version built with ``pii.action: redact`` holds redacted texts only. The build and
the gate's re-check of a stored version (:func:`dataset_facts`) index the same forms of
each held-out text, the redacted one included: a record the build keeps is one the
re-check finds clean, and a stored record holding a held-out text with its personal data
redacted is reported contaminated, with the held-out item it matched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from data_factories import make_label
from sqlalchemy.engine import Engine

from hilt.data.build import build_version
from hilt.data.spec import parse_spec
from hilt.data.versions import dataset_facts, get_version, read_records
from hilt.events.ingest import ingest_events
from hilt.store.db import transaction

# Shorter than the 13-word n-gram: matched as a whole word sequence, which the address
# interrupts, so only the redacted form of the held-out text matches a redacted record.
HELDOUT_PROMPT = "Tell alice.jones@example.com her bank account is locked, send the password"
# The held-out prompt with another address: equal to it once both are redacted.
OTHER_ADDRESS = HELDOUT_PROMPT.replace("alice.jones@example.com", "bob.smith@example.org")
PLAIN_PROMPT = "How do tomato plants in a small balcony garden grow best in spring?"
HELDOUT = [("safety@1", "phish-7", HELDOUT_PROMPT)]


def _spec() -> Any:
    return parse_spec({"name": "redacted", "kind": "classification",
                       "classification": {"question_id": "harm"},
                       "pii": {"action": "redact"},
                       "split": {"validation_fraction": 0.0}, "dedup": {"near": False}})


def _ingest(engine: Engine, prompts: dict[str, str]) -> list[Any]:
    ingest_events(engine, [{"id": eid, "interaction": {"prompt": prompt},
                            "responses": [{"text": f"I can't help with that ({eid})."}],
                            "context": {"consent": ["train"]}}
                           for eid, prompt in prompts.items()], actor="test")
    return [make_label(eid, "refuse", kind="single_choice", question="harm")
            for eid in prompts]


def test_dataflow_facts_build_removes_a_record_whose_redacted_text_is_a_heldout_prompt(
        engine: Engine, tmp_path: Path) -> None:
    labels = _ingest(engine, {"e1": OTHER_ADDRESS, "e2": PLAIN_PROMPT})
    with transaction(engine) as session:
        built = build_version(session, _spec(), actor="tester",
                              label_source=lambda _s, **_k: labels,
                              heldout_source=lambda _s: HELDOUT, directory=tmp_path)
        step = next(s for s in built.steps if s["step"] == "decontaminate")
        assert step["notes"]["matched_items"] == [{
            "record_key": "cls:e1:helpful/harm:prompt", "suite_id": "safety@1",
            "item_id": "phish-7"}]
        assert built.manifest["notes"]["heldout_items"] == 1
        facts = dataset_facts(session, built.version_id, heldout=HELDOUT)
    assert built.record_count == 1
    assert (facts.contaminated, facts.contaminating_items) == (False, [])


def test_dataflow_facts_reports_a_stored_redacted_leak_with_its_item_id(
        engine: Engine, tmp_path: Path) -> None:
    labels = _ingest(engine, {"e1": HELDOUT_PROMPT, "e2": PLAIN_PROMPT})
    with transaction(engine) as session:
        # Built before the suite was registered: the leak is stored, redacted.
        built = build_version(session, _spec(), actor="tester",
                              label_source=lambda _s, **_k: labels,
                              heldout_source=lambda _s: [], directory=tmp_path)
        texts = [r["text"] for r in read_records(get_version(session, built.version_id))]
        assert any("[EMAIL]" in t and "alice" not in t for t in texts), texts
        facts = dataset_facts(session, built.version_id, heldout=HELDOUT)
    assert facts.contaminated is True
    assert facts.contaminating_items == [{"record_key": "cls:e1:helpful/harm:prompt",
                                          "suite_id": "safety@1", "item_id": "phish-7"}]
