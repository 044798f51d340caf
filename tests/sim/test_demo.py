"""The demo runs end to end on a small stream and leaves a consistent store."""

from __future__ import annotations

from pathlib import Path

from hilt.sim.demo import run_demo
from hilt.sim.stream import SimConfig, simulate_stream


def test_stream_is_seeded_and_has_both_kinds_of_prompt() -> None:
    a = simulate_stream(SimConfig(n_events=300, seed=3))
    b = simulate_stream(SimConfig(n_events=300, seed=3))
    assert [i.event for i in a] == [i.event for i in b]
    unsafe = sum(i.unsafe_prompt for i in a) / len(a)
    assert 0.1 < unsafe < 0.3
    guard_unsafe = sum(i.event["scores"]["guardrail"] for i in a if i.unsafe_prompt)
    guard_safe = sum(i.event["scores"]["guardrail"] for i in a if not i.unsafe_prompt)
    n_unsafe = sum(i.unsafe_prompt for i in a)
    assert guard_unsafe / n_unsafe > guard_safe / (len(a) - n_unsafe)


def test_demo_runs_and_is_idempotent(tmp_path: Path) -> None:
    run = run_demo(tmp_path / "demo", SimConfig(n_events=200, seed=1), echo=lambda _: None)
    assert run.summary["ingest"]["new"] == 200
    assert run.summary["ingest"]["resent_new"] == 0
    assert run.summary["audit"]["audit_ok"]
    assert (tmp_path / "demo" / "summary.json").exists()
