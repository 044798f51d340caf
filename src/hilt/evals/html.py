"""``report.html``: one self-contained page (inline CSS and SVG, no scripts, no fetches).

Every piece of text that comes from a file — prompts, responses, slice names, ids — goes
through ``html.escape``; model output is data, never markup.
"""

from __future__ import annotations

from html import escape
from typing import Any

_COLOURS = {"candidate": "#c2410c", "reference": "#1d4ed8"}
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#111}
h1 span.pass{color:#15803d}h1 span.block{color:#b91c1c}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;
padding:.25rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
td.fail{background:#fee2e2}td.pass{background:#dcfce7}td.no_data{background:#f3f4f6}
pre{white-space:pre-wrap;max-height:14rem;overflow:auto;margin:0;font-size:.85rem}
details{margin:.5rem 0}.legend span{margin-right:1rem}p.turn{margin:.4rem 0 .1rem}
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def rate_chart(metric: str, slices: dict[str, Any]) -> str:
    """Horizontal interval plot: per slice, both systems' rate and Wilson interval."""
    rows = [(name, data[metric]) for name, data in slices.items()
            if metric in data and data[metric]["n"]]
    if not rows:
        return "<p>No prompts of this kind in the suite.</p>"
    label_w, plot_w, row_h = 180, 420, 34
    height = row_h * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 90}" '
             f'height="{height}" role="img" aria-label="{escape(metric)} by slice">']
    for tick in range(0, 101, 25):
        x = label_w + plot_w * tick / 100
        parts.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{height - 20}" stroke="#ddd"/>'
                     f'<text x="{x}" y="{height - 5}" font-size="10" '
                     f'text-anchor="middle">{tick}%</text>')
    for row, (name, entry) in enumerate(rows):
        top = row * row_h
        parts.append(f'<text x="{label_w - 6}" y="{top + 20}" font-size="11" '
                     f'text-anchor="end">{escape(name)} (n={entry["n"]})</text>')
        for offset, side in ((10, "candidate"), (22, "reference")):
            rate = entry[side]
            x_lo = label_w + plot_w * rate["ci_low"]
            x_hi = label_w + plot_w * rate["ci_high"]
            x_pt = label_w + plot_w * rate["rate"]
            y = top + offset
            colour = _COLOURS[side]
            parts.append(
                f'<line x1="{x_lo:.1f}" y1="{y}" x2="{x_hi:.1f}" y2="{y}" '
                f'stroke="{colour}" stroke-width="2"/>'
                f'<circle cx="{x_pt:.1f}" cy="{y}" r="4" fill="{colour}">'
                f'<title>{side}: {_pct(rate["rate"])} [{_pct(rate["ci_low"])}, '
                f'{_pct(rate["ci_high"])}]</title></circle>'
                f'<text x="{label_w + plot_w + 8}" y="{y + 4}" font-size="10" '
                f'fill="{colour}">{_pct(rate["rate"])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _criteria_table(criteria: list[dict[str, Any]]) -> str:
    head = ("<table><tr><th>behaviour</th><th>criterion</th><th>slice</th><th>status</th>"
            "<th>rule</th><th>numbers</th></tr>")
    rows = []
    for c in criteria:
        numbers = ", ".join(f"{escape(str(k))}={escape(_fmt(v))}"
                            for k, v in c["numbers"].items())
        rows.append(f"<tr><td>{escape(c['behaviour'])}</td><td>{escape(c['id'])}</td>"
                    f"<td>{escape(c['slice'])}</td><td class=\"{escape(c['status'])}\">"
                    f"{escape(c['status'])}</td><td>{escape(c['rule'])}</td>"
                    f"<td>{numbers}</td></tr>")
    return head + "".join(rows) + "</table>"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _delta_table(metric: str, slices: dict[str, Any], method: str) -> str:
    rows = []
    for name, data in slices.items():
        entry = data.get(metric)
        if not entry or entry["delta"] is None:
            continue
        d = entry["delta"]
        rows.append(f"<tr><td>{escape(name)}</td><td>{entry['n']}</td>"
                    f"<td>{_pct(entry['candidate']['rate'])}</td>"
                    f"<td>{_pct(entry['reference']['rate'])}</td>"
                    f"<td>{100 * d['value']:+.1f} pp [{100 * d['ci_low']:+.1f}, "
                    f"{100 * d['ci_high']:+.1f}]</td><td>{d['mcnemar_p']:.3g}</td>"
                    f"<td>{d.get('mcnemar_p_holm', d['mcnemar_p']):.3g}</td></tr>")
    return ("<table><tr><th>slice</th><th>n</th><th>candidate</th><th>reference</th>"
            f"<th>delta ({escape(method)} CI)</th><th>McNemar p</th><th>Holm p</th></tr>"
            + "".join(rows) + "</table>")


def _card(card: dict[str, Any]) -> str:
    out = []
    for section in card["behaviours"]:
        rows = []
        for obj, qs in section["objects"].items():
            for kind in ("mathematical", "engineering"):
                q = qs[kind]
                links = " ".join(escape(link) for link in q["links"])
                missing = "; ".join(escape(m) for m in q["missing"])
                rows.append(f"<tr><td>{escape(obj)}</td><td>{escape(q['question'])}</td>"
                            f"<td class=\"{'pass' if q['status'] == 'answered' else 'no_data'}"
                            f"\">{escape(q['status'])}</td><td>{escape(q['answer'] or '')}"
                            f"</td><td>{links}</td><td>{missing}</td></tr>")
        out.append(f"<h3>{escape(section['behaviour'])}</h3><table><tr><th>object</th>"
                   "<th>question</th><th>status</th><th>answer</th><th>records</th>"
                   "<th>missing</th></tr>" + "".join(rows) + "</table>")
    return "".join(out)


def _prompt(prompt: str | list[dict[str, str]]) -> str:
    """A plain prompt as text; a conversation turn by turn, each under its role."""
    if isinstance(prompt, str):
        return f"<pre>{escape(prompt)}</pre>"
    return "".join(f"<p class=\"turn\"><b>{escape(turn['role'])}</b></p>"
                   f"<pre>{escape(turn['content'])}</pre>" for turn in prompt)


def _examples(failing: dict[str, Any]) -> str:
    items = []
    for ex in failing["examples"]:
        tag = "regression" if ex["regression"] else "also failed by the reference"
        items.append(
            f"<details><summary>{escape(ex['id'])} · {escape(ex['slice'])} · "
            f"{escape(ex['failure'])} · {tag}</summary><table>"
            f"<tr><th>prompt</th><td>{_prompt(ex['prompt'])}</td></tr>"
            f"<tr><th>candidate ({escape(ex['candidate']['judgment'])}, "
            f"{escape(ex['candidate']['source'])})</th>"
            f"<td><pre>{escape(ex['candidate']['response'])}</pre></td></tr>"
            f"<tr><th>reference ({escape(ex['reference']['judgment'])}, "
            f"{escape(ex['reference']['source'])})</th>"
            f"<td><pre>{escape(ex['reference']['response'])}</pre></td></tr></table>"
            "</details>")
    return (f"<p>{failing['total']} failing prompts, {failing['regressions']} of them "
            f"regressions; {failing['listed']} listed.</p>" + "".join(items))


def win_interval_label(metrics_version: int) -> str:
    """What the win-rate interval is, by the methods the record was computed with
    (:mod:`hilt.evals.metrics`: version 1 bootstrapped it, versions 2 on use Wilson)."""
    return "Wilson score interval" if metrics_version >= 2 else "bootstrap interval"


def _win_table(slices: dict[str, Any], metrics_version: int) -> str:
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_pct(w['value'])}</td><td>{_pct(w['ci_low'])} – "
        f"{_pct(w['ci_high'])}</td><td>{w['wins']} / {w['ties']} / {w['losses']}</td></tr>"
        for name, entry in slices.items() if (w := entry.get("rm_win_rate")))
    return ("<table><tr><th>slice</th><th>win-rate</th>"
            f"<th>{win_interval_label(metrics_version)}</th>"
            f"<th>wins / ties / losses</th></tr>{rows}</table>")


def _review_section(review: dict[str, Any] | None) -> str:
    if not review:
        return ""
    estimates = review.get("estimates") or {}
    # records from metrics version 3 on carry the effective sample size of each interval
    effective = any("effective_n" in e for e in estimates.values())
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{_pct(e['estimate'])}</td><td>{_pct(e['ci_low'])}"
        f" – {_pct(e['ci_high'])}</td><td>{e['returned']}</td>"
        + (f"<td>{_effective_n(e.get('effective_n'))}</td>" if effective else "")
        + f"<td>{_pct(e['coverage'])}</td></tr>" for name, e in estimates.items())
    return (f"<h2>Human review sample</h2><p>{review['sampled']} candidate outputs sent "
            f"under rubric {escape(review['rubric'])} (question "
            f"{escape(review['question'])}, strata {escape(review['strata_by'])}); "
            f"{review['returned']} returned, {review['pending']} pending. Returned human "
            "judgments replace automatic ones.</p>"
            + ("<table><tr><th>estimated from the sample</th><th>estimate</th>"
               "<th>interval</th><th>returned</th>"
               + ("<th>effective n</th>" if effective else "")
               + "<th>coverage</th></tr>" + rows + "</table>" if rows else ""))


def _effective_n(value: float | None) -> str:
    """The effective sample size behind a review-sample interval; a census has none."""
    return "–" if value is None else f"{value:.1f}"


def _lineage_section(lineage: dict[str, Any]) -> str:
    if not lineage.get("evaluated"):
        return ""
    items = [f"<li>{escape(p)}</li>" for p in lineage["problems"]]
    items += [f"<li>unknown: {escape(u)}</li>" for u in lineage["unknown"]]
    return (f"<h2>Training lineage: {escape(lineage['status'])}</h2>"
            + (f"<ul>{''.join(items)}</ul>" if items else "<p>No problem found.</p>"))


def render_html(report: dict[str, Any]) -> str:
    outcome = report["outcome"]
    method = report.get("delta_interval", "paired bootstrap percentile")
    # reports of records made before metrics versions were named are version 1
    version = int(report.get("metrics_version", 1))
    win_method = (f"{report['bootstrap_resamples']} bootstrap resamples (win-rate)"
                  if version < 2 else f"win-rate intervals: {win_interval_label(version)}")
    metrics = "".join(
        f"<h3>{escape(m)}</h3><p>{escape(desc)}</p>"
        + (rate_chart(m, report["slices"]) + _delta_table(m, report["slices"], method)
           if m != "rm_win_rate" else _win_table(report["slices"], version))
        for m, desc in report["metric_descriptions"].items())
    reasons = "".join(f"<li>{escape(r)}</li>" for r in report["gate"]["reasons"])
    versions = "".join(f"<tr><th>{escape(k)}</th><td>{escape(_fmt(v))}</td></tr>"
                       for k, v in report["versions"].items())
    legend = "".join(f'<span style="color:{c}">● {s}</span>' for s, c in _COLOURS.items())
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>hilt regression report</title><style>" + _CSS + "</style></head><body>"
        f"<h1>Gate: <span class=\"{escape(outcome)}\">{escape(outcome.upper())}</span></h1>"
        f"<p>Decision {escape(report['decision_hash'])} · policy "
        f"{escape(report['policy']['id'])} v{escape(report['policy']['version'])} · "
        f"α = {report['alpha']} · delta intervals: "
        f"{escape(method)} · "
        f"{escape(win_method)} · "
        f"{escape(report['multiple_comparisons'])}</p>"
        + (f"<ul>{reasons}</ul>" if reasons else "")
        + "<h2>Criteria</h2>" + _criteria_table(report["gate"]["criteria"])
        + f"<h2>Rates by slice</h2><p class=\"legend\">{legend} (Wilson "
        f"{100 * (1 - report['alpha']):g}% intervals)</p>"
        + metrics
        + _review_section(report.get("review_sample"))
        + _lineage_section(report["gate"]["lineage"])
        + "<h2>Failing examples</h2>" + _examples(report["failing_examples"])
        + "<h2>Model contract card</h2>" + _card(report["contract_card"])
        + f"<h2>Versions</h2><table>{versions}</table></body></html>")
