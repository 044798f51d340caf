"""The demo runs end to end on a small stream and leaves a consistent store."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilt.sim import demo_release
from hilt.sim.demo import demo_config, run_demo
from hilt.sim.stream import SimConfig, simulate_stream
from tests.ops.climain import run_hilt


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


def test_prompt_mix_shift_is_injected() -> None:
    items = simulate_stream(SimConfig(n_events=2000, unsafe_share=0.1,
                                      unsafe_share_after=0.5, shift_at=0.5, seed=2))
    early = sum(i.unsafe_prompt for i in items[:1000]) / 1000
    late = sum(i.unsafe_prompt for i in items[1000:]) / 1000
    assert early < 0.15 and late > 0.4


@pytest.mark.slow
def test_demo_runs_the_loop_and_is_idempotent(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # A relative folder, as `hilt demo` gets by default: the training steps run CLI
    # commands from inside it and must still find the demo's database.
    monkeypatch.chdir(tmp_path)
    # The training, evaluation and check commands run in this process, with the
    # environment and folder the child would get (a new interpreter per command costs
    # seconds of imports); test_the_commands_run_in_a_child_with_their_environment
    # covers the child itself.
    monkeypatch.setattr(demo_release, "run_child",
                        lambda args, *, env, cwd: run_hilt(args, env=env, cwd=cwd))
    run = run_demo(Path("demo"), demo_config(400, seed=1), echo=lambda _: None)
    s = run.summary
    assert s["ingest-1"]["new"] == 240 and s["ingest-1"]["resent_new"] == 0
    assert s["calibration"]["statuses"]["rev-fox"] == "suspended"  # the spammer
    assert s["review-2"]["tasks_by_status"].get("open", 0) == 0
    # cases the last refit reopened are adjudicated too
    assert s["review-2"]["still_needs_adjudication"] == 0
    assert "needs_adjudication" not in s["review-2"]["tasks_by_status"]
    assert s["audit"]["audit_ok"]
    assert (tmp_path / "demo" / "summary.json").exists()
    report = (tmp_path / "demo" / "report.html").read_text()
    regression = report[report.index("<h2>Regression check"):]
    regression = regression[:regression.index("<h2>", 4)]
    assert "Reasons of the final decision" in regression
    assert "sign-off missing" not in regression  # the release owner signed
    # the folder is the demo's own: the next run may replace it
    assert (tmp_path / "demo" / ".hilt-demo").exists()


def test_the_commands_run_in_a_child_with_their_environment(tmp_path: Path) -> None:
    """The demo's model steps call hilt in a child process, as a pipeline would: it
    reads the demo's database and home from its environment and runs in the demo's
    folder (a relative path is the folder's)."""
    from hilt.errors import HiltError
    from tests.conftest import migrated_sqlite

    url = migrated_sqlite(tmp_path / "demo.db")
    done = demo_release.hilt_cli(["models", "list"], db_url=url, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.json").write_text("{}")  # found in cwd, then refused
    with pytest.raises(HiltError, match=r"failed \(2\).*d\.json, field 'schema'"):
        demo_release.hilt_cli(["gate", "verify", "d.json"], db_url=url,
                              cwd=tmp_path / "sub")
