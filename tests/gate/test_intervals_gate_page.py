"""The gate page names the level of its rate intervals as the check computed it, not
rounded to a whole percent."""

from __future__ import annotations

import html
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hilt.evals.check import run_check
from hilt.web.render import env


def _record(folder: Path, alpha: float) -> dict[str, Any]:
    suite = [{"id": f"p{i}", "prompt": f"prompt {i}", "slice": "chat", "expect": "comply"}
             for i in range(6)]
    answers = [{"id": s["id"], "response": "r", "judgment": "comply"} for s in suite]
    for name, rows in (("suite", suite), ("resp", answers)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_check(suite=folder / "suite.jsonl", candidate=folder / "resp.jsonl",
                     reference=folder / "resp.jsonl", out=folder / "out", alpha=alpha,
                     resamples=200).record


def _page(record: dict[str, Any]) -> str:
    row = SimpleNamespace(hash="cd" * 32, policy_id="default", policy_version=1)
    return html.unescape(env.get_template("gate.html").render(
        csrf="", principal=None, flash=None, prefix="/ui", version="test", error=None,
        title="Gate decision", row=row, record=record, decision=record["decision"],
        metrics=record["metrics"], versions=record["inputs"]["versions"]))


@pytest.mark.parametrize("alpha,level", [(0.005, "99.5%"), (0.025, "97.5%"),
                                         (0.05, "95%"), (0.1, "90%")])
def test_gate_page_states_the_interval_level_unrounded(tmp_path: Path, alpha: float,
                                                       level: str) -> None:
    page = _page(_record(tmp_path, alpha))
    assert f"Rates with {level} Wilson intervals" in page
    # the check's own report says the same
    report = (tmp_path / "out" / "report.html").read_text()
    assert f"{level} intervals" in html.unescape(report)
