"""The gate decision page: which p-values it shows and how it reports sign-offs."""

from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace
from typing import Any

import pytest

from hilt.evals.check import run_check
from hilt.gate.evaluate import evaluate_signoffs
from hilt.gate.policy import default_policy, policy_from_dict
from hilt.web.render import env


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A decision over two slices of one metric (so Holm differs from raw) with one of two
    required release-owner sign-offs given."""
    folder = tmp_path_factory.mktemp("gate")
    suite = [{"id": f"p{i}", "prompt": f"prompt {i}", "slice": "chat" if i < 12 else "code",
              "expect": "comply"} for i in range(24)]
    cand = [{"id": s["id"], "response": "r", "judgment": "refuse"
             if i in (0, 1, 2, 3, 4, 12, 13) else "comply"} for i, s in enumerate(suite)]
    ref = [{"id": s["id"], "response": "r", "judgment": s["expect"]} for s in suite]
    facts = {"signoffs": [{"role": "release_owner", "by": "lead-7",
                           "at": "2030-01-02T03:04:05+00:00", "note": "looked at slices"}]}
    for name, data in (("suite", suite), ("cand", cand), ("ref", ref)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    policy = policy_from_dict({**default_policy().as_dict(),
                               "signoffs": [{"role": "release_owner", "count": 2}]})
    out = run_check(suite=folder / "suite.jsonl", candidate=folder / "cand.jsonl",
                    reference=folder / "ref.jsonl", out=folder / "out", resamples=200,
                    policy=policy).record
    # as after `hilt gate signoff` by one of the two people the policy asks for
    out["decision"]["signoffs"] = evaluate_signoffs(policy, facts)
    return out


def _page(record: dict[str, Any]) -> str:
    row = SimpleNamespace(hash="ab" * 32, policy_id="default", policy_version=1)
    return html.unescape(env.get_template("gate.html").render(
        csrf="", principal=None, flash=None, prefix="/ui", version="test", error=None,
        title="Gate decision", row=row, record=record, decision=record["decision"],
        metrics=record["metrics"], versions=record["inputs"]["versions"]))


def _cells(page: str, slice_name: str, metric: str) -> list[str]:
    found = re.search(rf'<th scope="row">{slice_name}</th><td>{metric}</td>(.*?)</tr>',
                      page, re.S)
    assert found, page
    return [c.strip() for c in re.findall(r"<td>(.*?)</td>", found.group(1), re.S)]


def test_gate_page_shows_raw_and_holm_p_values(record: dict[str, Any]) -> None:
    page = _page(record)
    assert "McNemar raw p" in page and "McNemar Holm p" in page
    shown = 0
    for name, data in record["metrics"]["slices"].items():
        for metric, entry in data.items():
            delta = entry.get("delta") if isinstance(entry, dict) else None
            if not delta:
                continue
            cells = _cells(page, name, metric)
            assert cells[-2] == f"{delta['mcnemar_p']:.3f}"
            assert cells[-1] == f"{delta['mcnemar_p_holm']:.3f}"
            shown += 1
    assert shown
    # the check is not vacuous: some slice's Holm p differs from its raw p
    assert any(e["delta"]["mcnemar_p_holm"] != e["delta"]["mcnemar_p"]
               for d in record["metrics"]["slices"].values() for e in d.values()
               if isinstance(e, dict) and e.get("delta"))


def test_gate_page_lists_given_and_missing_signoffs(record: dict[str, Any]) -> None:
    page = _page(record)
    section = page.split("<h2>Sign-offs</h2>", 1)[1].split("<h2>Versions</h2>", 1)[0]
    text = re.sub(r"<[^>]+>", " ", section)
    text = " ".join(text.split())
    assert "Sign-off requirement not met" in text
    assert "lead-7 release_owner 2030-01-02 03:04 UTC looked at slices" in text
    assert "release_owner 1 / 2" in text
