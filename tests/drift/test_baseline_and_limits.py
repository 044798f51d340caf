"""The baseline grows until it is large enough to test against, groups that could not be
tested are reported, a rubric option nobody used does not block a bridge, and drift
settings outside workable bounds are input errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from hilt.errors import InputError
from hilt.events.ingest import ingest_events
from hilt.quality.drift import Categorical, DriftConfig, detect_shift, transition_matrix
from hilt.quality.drift.bridge import bridge_compatibility, bridge_status, create_bridge
from hilt.quality.drift.monitors import Outcome, Untested, detect_rate_change
from hilt.quality.drift.runner import run_monitors
from hilt.quality.drift.windows import baseline_windows
from hilt.review.rubrics import publish_rubric
from hilt.review.tasks import create_task
from hilt.store import audit
from hilt.store.db import transaction
from tests.drift.answering import answer_everything

from . import scenario
from .test_cli_api import cli

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
BASE = 20000
GROUP = (("rubric", "harm@1"), ("question", "verdict"), ("pool", "default"))


def _ramp_up_stream(seed: int = 0) -> list[Categorical]:
    """20 labels a day for 4 days, then 300 a day; 'harmful' goes 15% -> 55% on day 15."""
    rng = np.random.default_rng(seed)
    out = []
    for day in range(30):
        n = 20 if day < 4 else 300
        shares = [0.6, 0.25, 0.15] if day < 15 else [0.2, 0.25, 0.55]
        for value in rng.choice(["safe", "borderline", "harmful"], size=n, p=shares):
            at = EPOCH + (BASE + day) * DAY + timedelta(seconds=float(rng.random() * 86000))
            out.append(Categorical(at, GROUP, str(value)))
    return out


def test_baseline_grows_over_a_slow_start_until_it_can_be_tested() -> None:
    # The first 4 windows hold 80 labels, under min_reference_n (100): the group used to
    # be skipped in every window, so the shift on day 15 was never found.
    untested: list[Untested] = []
    alerts = detect_shift("label_shift", _ramp_up_stream(), list(range(BASE + 4, BASE + 30)),
                          DriftConfig(), untested=untested)
    days = sorted({(a.window_start - EPOCH) // DAY - BASE for a in alerts})
    assert days == list(range(15, 30))
    # Baseline: days 0-4 (80 + 300 labels); day 4 is inside it, so it is reported.
    assert {a.reference_start for a in alerts} == {EPOCH + BASE * DAY}
    assert {a.n_reference for a in alerts} == {380}
    assert [(u.window - BASE, u.reason, u.n_current, u.n_reference) for u in untested] == [
        (4, "baseline not complete", 300, 80)]


def test_baseline_windows_count_only_windows_with_data() -> None:
    config = DriftConfig(reference_windows=2, min_reference_n=100)
    assert baseline_windows({5: 60, 6: 0, 9: 50, 12: 10}, 100, config) == [5, 9]
    assert baseline_windows({5: 30, 9: 30, 12: 30, 13: 30}, 100, config) == [5, 9, 12, 13]
    assert baseline_windows({5: 30, 9: 30}, 100, config) is None
    assert baseline_windows({5: 500}, 100, config) is None  # one window is not enough


def test_a_group_that_never_reaches_its_reference_is_reported_every_window() -> None:
    at = [EPOCH + (BASE + day) * DAY + timedelta(hours=h) for day in range(8)
          for h in range(3)]
    observations = [Outcome(moment, (("rubric", "tiny@1"),), bool(i % 2))
                    for i, moment in enumerate(at)]
    untested: list[Untested] = []
    alerts = detect_rate_change("adjudication_rate", observations,
                                list(range(BASE, BASE + 10)), DriftConfig(), "increase",
                                untested=untested)
    assert alerts == []
    # Windows 8 and 9 hold no data: nothing to test, nothing to report.
    assert [u.window - BASE for u in untested] == list(range(8))
    assert {u.reason for u in untested} == {"baseline not complete"}


def test_run_lists_untested_groups_in_output_and_audit(engine: Engine, db_url: str,
                                                       tmp_path: Path) -> None:
    scenario.base(engine)
    scenario.history(engine)
    now = scenario.T0 + timedelta(days=scenario.DAYS, hours=1)
    config = tmp_path / "drift.yaml"
    config.write_text(f"lookback_windows: {scenario.DAYS}\nmin_window_n: 40\n"
                      "enabled: [label_shift]\n")
    code, out = cli(db_url, "drift", "run", "--dry-run", "--now", now.isoformat(),
                    "--config", str(config))
    assert code == 0, out
    (entry,) = json.loads(out)["untested"]
    assert entry["monitor"] == "label_shift"
    assert entry["group"] == {"rubric": "simple@1", "question": "verdict", "pool": "default"}
    # The first 4 daily windows make up the baseline (60 labels each).
    assert entry["windows"] == 4 and entry["reasons"] == {"baseline not complete": 4}
    with transaction(engine) as s:
        run_monitors(s, now, config=DriftConfig(lookback_windows=scenario.DAYS,
                                                min_window_n=40, enabled=("label_shift",)))
        (logged,) = audit.entries(s, action="drift.run")
    assert logged.payload["untested_groups"] == 1
    assert logged.payload["untested"][0]["reasons"] == {"baseline not complete": 4}


def test_an_unused_old_option_does_not_block_compatibility() -> None:
    pairs = [("safe", "safe")] * 100 + [("harmful", "harmful")] * 100
    matrix = transition_matrix(pairs, old_categories=["safe", "borderline", "harmful"],
                               new_categories=["safe", "borderline", "harmful"])
    assert matrix.status == "compatible", matrix.reason
    assert matrix.untestable == ("borderline",)
    # A row with items left to re-review still has to reach min_row_n ...
    started = transition_matrix(pairs[:100] + pairs[100:105],
                                available={"safe": 100, "harmful": 30})
    assert started.status == "unknown" and "'harmful'" in started.reason
    # ... but only what its stratum holds, when that is less.
    few = transition_matrix(pairs[:100] + pairs[100:105], available={"safe": 100,
                                                                     "harmful": 5})
    assert "too few" not in few.reason


def test_finished_bridge_with_an_unused_option_is_compatible(engine: Engine) -> None:
    scenario.base(engine)
    # Nobody ever chose 'borderline' under version 1.
    truth = {f"ev{i:05d}": ("safe", "harmful")[i % 2] for i in range(24)}
    ingest_events(engine, [scenario.event(i, scenario.T0) for i in range(24)],
                  actor="service")
    with transaction(engine) as s:
        for event in truth:
            create_task(s, event_id=event, rubric="simple@1", actor="lead", overlap_k=1)
    assert answer_everything(engine, truth, "r0") == 24
    with transaction(engine) as s:
        publish_rubric(s, scenario.rubric("clearer wording"), actor="lead")
        made = create_bridge(s, "simple", 1, 2, actor="lead", per_stratum=12, overlap_k=1)
    assert answer_everything(engine, truth, "r1") == 24
    with transaction(engine) as s:
        status = bridge_status(s, made["bridge_id"])
        assert status["complete"]
        assert status["matrix"]["status"] == "compatible", status["matrix"]["reason"]
        assert list(status["matrix"]["untestable"]) == ["borderline"]
        compat = bridge_compatibility(s, "simple", 1, 2)
        assert compat.status == "compatible" and compat.mixable
        assert list(compat.questions["verdict"]["untestable"]) == ["borderline"]


@pytest.mark.parametrize(("text", "field"), [
    ("window_hours: 1.0e+300\n", "window_hours"),
    ("window_hours: 1.0e-300\n", "window_hours"),
    ("window_hours: 9000\n", "window_hours"),
    ("lookback_windows: 100000000\n", "lookback_windows"),
    ("lookback_windows: 91\n", "lookback_windows"),
    ("history_windows: 100000\n", "history_windows"),
    ("window_hours: 8000\nhistory_windows: 200\n", "history_windows"),
])
def test_window_settings_out_of_bounds_exit_2(engine: Engine, db_url: str, tmp_path: Path,
                                              text: str, field: str) -> None:
    config = tmp_path / "drift.yaml"
    config.write_text(text)
    code, out = cli(db_url, "drift", "run", "--dry-run", "--config", str(config))
    assert code == 2 and f"{config}, line " in out and f"field '{field}'" in out, out


def test_window_settings_at_their_bounds_load() -> None:
    DriftConfig(window_hours=1 / 60)
    DriftConfig(window_hours=366 * 24, history_windows=90, lookback_windows=90)
    with pytest.raises(InputError):
        DriftConfig(lookback_windows=91)


def test_config_that_is_not_utf8_exits_2_naming_the_line(engine: Engine, db_url: str,
                                                         tmp_path: Path) -> None:
    config = tmp_path / "drift.yaml"
    config.write_bytes(b"window_hours: 24\n\xff\xfe: 1\n")
    code, out = cli(db_url, "drift", "run", "--dry-run", "--config", str(config))
    assert code == 2 and f"{config}, line 2" in out and "UTF-8" in out


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "nan"])
def test_bridge_threshold_out_of_range_exits_2(engine: Engine, db_url: str,
                                               threshold: str) -> None:
    scenario.base(engine)
    code, out = cli(db_url, "drift", "bridge", "create", "simple", "--old", "1", "--new",
                    "2", "--threshold", threshold)
    assert code == 2 and "field 'threshold'" in out, out
