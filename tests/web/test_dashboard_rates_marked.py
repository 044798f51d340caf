"""Every rate on the lead dashboard comes with its interval, or says that it has none:
a model's accuracy and a drift alert's effect stored without one are marked "(no
interval)", as on the gate page, never shown bare or as "[–, –]"."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.store.db import transaction
from hilt.store.tables.drift import DriftAlertRow
from tests.web.asgi import sign_in
from tests.web.conftest import add_person


def _rows(page: str, heading: str) -> list[str]:
    """The text of each body row of the table under ``heading``."""
    section = re.search(rf'<h2 id="{heading}-heading">.*?</section>', page, re.S)
    assert section, page[:500]
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
            for row in re.findall(r"<tr>(.*?)</tr>", section.group(0), re.S)
            if "<td" in row]


def _model(engine: Engine, name: str, metrics: dict[str, Any]) -> None:
    from hilt.train.registry import register_model_version

    manifest = {"kind": "reward", "base_model": "all-MiniLM-L6-v2",
                "data": {"hash": "4693ccb07dabcdfb" * 4}, "config": {}, "seed": 0,
                "code_version": "hilt 0.1.0@" + "a231a19a99" * 4, "metrics": metrics}
    with transaction(engine) as s:
        register_model_version(s, manifest=manifest, name=name,
                               artifact_path=f"/srv/models/{name}")


def _alert(engine: Engine, alert_id: str, detail: dict[str, Any], *,
           effect_name: str = "rate_change", effect: float = 0.3) -> None:
    start = datetime(2030, 1, 8, tzinfo=UTC)
    with transaction(engine) as s:
        s.add(DriftAlertRow(
            id=alert_id, monitor=alert_id, group_key="pool=default",
            group={"pool": "default"}, window_start=start, window_end=start,
            reference_start=start, test="fisher_exact", p_value=0.001, alpha=0.01,
            effect_name=effect_name, effect=effect, min_effect=0.05, n_current=100,
            n_reference=400, n_tests=1, message=f"{alert_id} moved", detail=detail,
            status="open"))


def test_a_model_accuracy_without_an_interval_is_marked(client: TestClient,
                                                       engine: Engine) -> None:
    _model(engine, "bare-rm", {"accuracy": 0.75, "n": 8})
    _model(engine, "ci-rm", {"accuracy": 0.75, "n": 8,
                             "accuracy_ci": {"low": 0.41, "high": 0.93}})
    _model(engine, "rate-rm", {"accuracy": {"value": 0.5, "n": 10}})
    sign_in(client, add_person(engine, "lead-1", "lead"))
    rows = {row.split()[0]: row for row in _rows(client.get("/ui/lead").text, "models")}
    assert "75.0% (no interval), n = 8" in rows["bare-rm"], rows
    assert "75.0% [41.0%, 93.0%], n = 8" in rows["ci-rm"], rows
    assert "no interval" not in rows["ci-rm"]
    assert "50.0% (no interval), n = 10" in rows["rate-rm"], rows


def test_a_drift_effect_without_an_interval_is_marked(client: TestClient,
                                                     engine: Engine) -> None:
    _alert(engine, "bare", {})  # stored without detail: no intervals entry
    _alert(engine, "with-ci", {
        "reference_rate": 0.1, "current_rate": 0.4, "reference_ci": [0.07, 0.13],
        "current_ci": [0.31, 0.5], "change": 0.3, "change_ci": [0.2, 0.4],
        "reference_trials": 400, "current_trials": 100})
    _alert(engine, "shift", {
        "current_share_intervals": {"a": [0.6, 0.5, 0.69], "b": [0.4, 0.31, 0.5]},
        "reference_share_intervals": {"a": [0.3, 0.26, 0.35], "b": [0.7, 0.65, 0.74]}},
        effect_name="psi", effect=0.4)
    sign_in(client, add_person(engine, "lead-1", "lead"))
    rows = {re.search(r"(\S+) moved", row).group(1): row  # type: ignore[union-attr]
            for row in _rows(client.get("/ui/lead").text, "drift")}
    assert "rate_change 0.300 (no interval)" in rows["bare"], rows
    assert "rate_change 0.300 [0.200, 0.400]" in rows["with-ci"], rows
    assert "no interval" not in rows["with-ci"]
    # a shift's PSI is descriptive; the share that moved carries the intervals
    assert "'a': 30.0% [26.0%, 35.0%] → 60.0% [50.0%, 69.0%]" in rows["shift"], rows
    assert "[–" not in " ".join(rows.values())
