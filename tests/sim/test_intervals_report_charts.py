"""The demo report's interval charts widen their axis to hold every value, so a point or
interval outside the preferred range is drawn where it belongs, not pinned to the edge."""

from __future__ import annotations

import re

import pytest

from hilt.sim.report import axis_range, interval_chart, render_report

PLOT_LEFT, PLOT_RIGHT = 210.0, 620.0  # the chart's plotting area in SVG units


def _marks(svg: str) -> tuple[float, list[tuple[float, float]], list[str]]:
    """The dot's x, the whiskers' (x1, x2) and the axis tick labels."""
    (cx,) = re.findall(r'<circle cx="([\d.]+)"', svg)
    whiskers = [(float(a), float(b)) for a, b in re.findall(
        r'<line x1="([\d.]+)" y1="\d+" x2="([\d.]+)" y2="\d+" stroke="#1f4e79"', svg)]
    ticks = re.findall(r'text-anchor="middle">([\d.-]+)</text>', svg)
    return float(cx), whiskers, ticks


def _position(value: float, lo: float, hi: float) -> float:
    return PLOT_LEFT + (value - lo) / (hi - lo) * (PLOT_RIGHT - PLOT_LEFT)


def test_a_value_below_the_axis_widens_it() -> None:
    # majority-vote accuracy 0.70 [0.62, 0.77] on the label-accuracy chart (0.8 to 1.0)
    svg = interval_chart([("mv", 0.70, 0.62, 0.77, None)], title="t", lo=0.8, hi=1.0)
    cx, ((x1, x2),), ticks = _marks(svg)
    assert ticks[0] == "0.60" and ticks[-1] == "1.00"
    assert x1 < cx < x2  # a whisker of real length around the dot
    assert cx == pytest.approx(_position(0.70, 0.6, 1.0), abs=0.1)
    assert (x1, x2) == pytest.approx((_position(0.62, 0.6, 1.0),
                                      _position(0.77, 0.6, 1.0)), abs=0.1)


def test_a_value_above_the_axis_widens_it() -> None:
    # a candidate refusing 72 % of benign prompts on the check chart (0 to 0.6)
    svg = interval_chart([("candidate", 0.72, 0.65, 0.78, 0.7)], title="t", lo=0.0, hi=0.6)
    cx, ((x1, x2),), ticks = _marks(svg)
    assert ticks[-1] == "0.80"
    assert cx == pytest.approx(_position(0.72, 0.0, 0.8), abs=0.1)
    assert x2 < PLOT_RIGHT  # the interval's end is inside the axis, not at its edge
    truth = re.search(r'<path d="M([\d.]+) ', svg)
    assert truth and float(truth.group(1)) == pytest.approx(_position(0.7, 0.0, 0.8), abs=0.1)


def test_values_inside_the_axis_keep_it() -> None:
    assert axis_range([("a", 0.9, 0.85, 0.95, 0.92)], 0.8, 1.0) == (0.8, 1.0)
    assert axis_range([("a", 0.7, 0.7, 0.7, None)], 0.7, 1.0) == (0.7, 1.0)
    assert axis_range([("a", None, None, None, None)], 0.4, 1.0) == (0.4, 1.0)
    assert axis_range([], 0.0, 0.6) == (0.0, 0.6)


def test_report_draws_a_poor_aggregation_inside_its_chart() -> None:
    quality = {"questions": {"harm": {
        name: {"value": 0.70, "ci": [0.62, 0.77], "n": 120}
        for name in ("majority_vote", "dawid_skene", "final_labels")}}, "reviewers": {}}
    page = render_report({}, {"quality": quality})
    chart = page.split('aria-label="Label accuracy vs truth"', 1)[1].split("</svg>", 1)[0]
    assert ">0.60</text>" in chart
    assert 'cx="210.0"' not in chart  # no dot pinned to the left edge
