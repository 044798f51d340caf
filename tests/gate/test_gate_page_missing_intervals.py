"""The gate page shows a rate without interval bounds as "–" (no items) or as the rate
marked "(no interval)", never as an interval of missing bounds "[–, –]"."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from tests.gate.test_intervals_gate_page import _page, _record


def _rows(page: str) -> dict[tuple[str, str], list[str]]:
    """The cells of the rates table, keyed by (slice, metric)."""
    table = page.split("<h2>Rates by slice</h2>", 1)[1].split("</table>", 1)[0]
    rows = {}
    for slice_, metric, cells in re.findall(
            r'<tr><th scope="row">([^<]*)</th><td>([^<]*)</td>(.*?)</tr>', table, re.S):
        rows[(slice_, metric)] = [c.strip() for c in re.findall(r"<td>(.*?)</td>", cells,
                                                                 re.S)]
    return rows


def test_a_rate_of_no_items_shows_a_single_dash(tmp_path: Path) -> None:
    # every prompt should be answered, so the unsafe-compliance rate has n = 0
    page = _page(_record(tmp_path, 0.05))
    assert "[–, –]" not in page
    n, candidate, reference, delta, raw_p, holm_p = _rows(page)[("chat",
                                                                 "unsafe_compliance_rate")]
    assert n == "0"
    assert candidate == reference == delta == raw_p == holm_p == "–"
    # a rate with items keeps its interval
    assert _rows(page)[("chat", "benign_refusal_rate")][1] == "0.0% [0.0%, 39.0%]"


def test_a_rate_whose_bounds_were_not_computed_is_marked(tmp_path: Path) -> None:
    record = copy.deepcopy(_record(tmp_path, 0.05))
    entry = record["metrics"]["slices"]["chat"]["benign_refusal_rate"]
    entry["candidate"].update(ci_low=None, ci_high=None)
    entry["delta"].update(ci_low=None, ci_high=None)
    page = _page(record)
    assert "[–, –]" not in page and "[0.0%, –]" not in page
    cells = _rows(page)[("chat", "benign_refusal_rate")]
    assert cells[1] == "0.0% (no interval)"
    assert cells[2] == "0.0% [0.0%, 39.0%]"
    assert cells[3] == "0.0% (no interval)"
