"""The demo's HTML report: how well the loop recovered the simulator's hidden truth.

Self-contained (inline SVG, no scripts, no remote assets); every rate is drawn with its
interval. Text from the run is escaped.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = tuple[str, float | None, float | None, float | None, float | None]
"""label, value, ci_low, ci_high, true value (or None)"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def axis_range(rows: Sequence[Row], lo: float, hi: float, step: float = 0.1
               ) -> tuple[float, float]:
    """``[lo, hi]`` widened, in whole ``step``s, to hold every value, interval end and true
    value of ``rows``: a point pinned to the axis edge would show a wrong value and a
    zero-length whisker."""
    values = [v for row in rows for v in row[1:] if v is not None and math.isfinite(v)]
    if not values:
        return lo, hi
    # the small slack keeps 0.7 (7.000000000000001 steps) from widening to 0.8
    low = min(lo, math.floor(min(values) / step + 1e-9) * step)
    high = max(hi, math.ceil(max(values) / step - 1e-9) * step)
    return round(low, 10), round(high, 10)


def interval_chart(rows: Sequence[Row], *, title: str, lo: float = 0.0,
                   hi: float = 1.0) -> str:
    """Horizontal dots with interval whiskers; a hollow diamond marks the truth.

    ``lo``/``hi`` is the preferred axis; it widens (:func:`axis_range`) when a value,
    interval end or true value lies outside it, so every mark is drawn where it belongs."""
    width, left, right, row_h = 640, 210, 20, 26
    height = 36 + row_h * len(rows)
    lo, hi = axis_range(rows, lo, hi)
    span = max(hi - lo, 1e-9)

    def x(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / span * (width - left - right)

    parts = [f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="4" y="14" font-size="13" font-weight="bold">{_e(title)}</text>']
    for tick in (lo, lo + span / 2, hi):
        parts.append(f'<line x1="{x(tick):.1f}" y1="22" x2="{x(tick):.1f}" y2="{height - 6}" '
                     'stroke="#ccc"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{height}" font-size="10" '
                     f'text-anchor="middle">{tick:.2f}</text>')
    for i, (label, value, c_lo, c_hi, truth) in enumerate(rows):
        y = 34 + i * row_h
        parts.append(f'<text x="4" y="{y + 4}" font-size="12">{_e(label)}</text>')
        if c_lo is not None and c_hi is not None:
            parts.append(f'<line x1="{x(c_lo):.1f}" y1="{y}" x2="{x(c_hi):.1f}" y2="{y}" '
                         'stroke="#1f4e79" stroke-width="2"/>')
        if value is not None:
            parts.append(f'<circle cx="{x(value):.1f}" cy="{y}" r="4" fill="#1f4e79">'
                         f'<title>{value:.3f}</title></circle>')
        if truth is not None:
            parts.append(f'<path d="M{x(truth):.1f} {y - 6} l5 6 l-5 6 l-5 -6 z" '
                         'fill="none" stroke="#b03a2e" stroke-width="1.5">'
                         f'<title>true {truth:.3f}</title></path>')
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ci(block: dict[str, Any] | None) -> str:
    if not block or block.get("value") is None:
        return "n/a"
    lo, hi = block["ci"]
    return f"{block['value']:.3f} [{lo:.3f}, {hi:.3f}] (n={block['n']})"


def _quality_section(quality: dict[str, Any]) -> str:
    out = ["<h2>Labels against the hidden truth</h2>",
           "<p>Accuracy of each aggregation against the simulator's truth, with 95% Wilson "
           "intervals. Final labels include adjudication.</p>"]
    rows: list[Row] = []
    for qid, r in quality.get("questions", {}).items():
        for name in ("majority_vote", "dawid_skene", "final_labels"):
            b = r[name]
            rows.append((f"{qid}: {name.replace('_', ' ')}", b["value"], b["ci"][0],
                         b["ci"][1], None))
    out.append(interval_chart(rows, title="Label accuracy vs truth", lo=0.8, hi=1.0))
    out.append("<h2>Reviewers: estimated against true quality</h2>")
    table, chart = [], []
    for name, r in quality.get("reviewers", {}).items():
        obs = r["observed_accuracy_vs_truth"]
        agree = r["agreement_with_final_labels"]
        true_mean = (r["true_accuracy_start"] + r["true_accuracy_end"]) / 2
        table.append([name, r["kind"], f"{r['true_accuracy_start']:.2f}→"
                      f"{r['true_accuracy_end']:.2f}", _ci(obs), _ci(agree),
                      _ci(r.get("dawid_skene_estimate")), r["cusum_alarm_progress"] or "—"])
        if agree.get("value") is not None:
            chart.append((name, agree["value"], agree["ci"][0], agree["ci"][1], true_mean))
    out.append(_table(["reviewer", "kind", "true accuracy (start→end)",
                       "observed vs truth", "agreement with final labels (hilt's view)",
                       "Dawid–Skene estimate (hilt's model)", "CUSUM alarm at run progress"],
                      table))
    out.append(interval_chart(chart, title="Agreement with final labels (dot, 95% CI) vs "
                              "true mean accuracy (diamond)", lo=0.4, hi=1.0))
    return "".join(out)


def _drift_section(drift: dict[str, Any]) -> str:
    bridge = drift.get("bridge", {})
    matrix = drift.get("compatibility", {})
    out = ["<h2>Rubric revision and drift</h2>",
           f"<p>Bridge set verdict for <code>demo-safety@1 → @2</code>: "
           f"<strong>{_e(bridge.get('verdict'))}</strong> (mixable: "
           f"{_e(bridge.get('mixable'))}). {_e(bridge.get('reason'))}</p>",
           "<details><summary>compatibility record</summary><pre>"
           f"{_e(json.dumps(matrix, indent=1, default=str)[:6000])}</pre></details>",
           f"<p>Drift monitors raised {drift.get('alerts_total', 0)} alert(s): "
           f"{_e(drift.get('alerts_by_monitor'))}.</p>"]
    rows = [[a.get("monitor"), a.get("group"), a.get("window_start"), a.get("effect"),
             a.get("p_value"), _alert_change(a), a.get("message")]
            for a in drift.get("alerts", [])[:20]]
    if rows:
        out.append(_table(["monitor", "group", "window", "effect", "p",
                           "change (95% CI, or counts)", "message"], rows))
    return "".join(out)


def _alert_change(alert: dict[str, Any]) -> str:
    """The share that moved most, reference → current, with the intervals the alert
    carries; without intervals, the sample sizes the alert compared."""
    detail = alert.get("detail") or {}
    ref = detail.get("reference_share_intervals") or {}
    cur = detail.get("current_share_intervals") or {}
    common = [k for k in cur if k in ref]
    if common:
        key = max(common, key=lambda k: abs(cur[k][0] - ref[k][0]))
        r, c = ref[key], cur[key]
        return (f"{key}: {r[0]:.1%} [{r[1]:.1%}, {r[2]:.1%}] → "
                f"{c[0]:.1%} [{c[1]:.1%}, {c[2]:.1%}]")
    return f"n reference={alert.get('n_reference')}, n current={alert.get('n_current')}"


def _datasets_section(datasets: dict[str, Any]) -> str:
    rows = [[kind, v["version"][:16], v["records"],
             ", ".join(f"{k}: {n}" for k, n in (v.get("removed") or {}).items()) or "—",
             v.get("refused_mixed_build") or "—", v.get("split_reseeded") or "—"]
            for kind, v in datasets.items()]
    return ("<h2>Dataset versions</h2><p>Content-addressed versions built from the final "
            "labels (consent, PII, dedup, decontamination against the held-out suite, "
            "split). A build mixing rubric versions whose bridge shows incompatible labels "
            "is refused; the demo then keeps version 2 labels only.</p>"
            + _table(["kind", "version", "records", "removed by step",
                      "mixed-version build", "split re-seeded"], rows))


def _models_section(models: dict[str, Any]) -> str:
    rm = models.get("reward_model", {})
    clf = models.get("refusal_classifier_validation", {})
    probes = rm.get("bias_probes", {})
    rows: list[Row] = []
    if rm.get("accuracy") is not None:
        ci = rm.get("accuracy_ci", {})
        rows.append((f"reward model, held-out pairs (n={rm.get('n')})", rm["accuracy"],
                     ci.get("low"), ci.get("high"), None))
    shorter = probes.get("accuracy_chosen_shorter", {})
    if shorter.get("value") is not None:
        rows.append((f"RM, chosen is shorter (n={shorter.get('n')})", shorter["value"],
                     shorter.get("ci_low"), shorter.get("ci_high"), None))
    if clf.get("accuracy") is not None:
        distinct = clf.get("n_distinct")  # the intervals count distinct rows
        size = f"n={distinct} distinct" if distinct is not None else f"n={clf.get('n')}"
        rows.append((f"refusal classifier, validation split ({size})",
                     clf["accuracy"], clf.get("accuracy_ci_low"), clf.get("accuracy_ci_high"),
                     None))
    length = probes.get("reward_length_correlation", {})
    sft = models.get("sft", {}).get("metrics", {})
    ece, ece_ci = rm.get("ece"), rm.get("ece_ci") or {}
    ece_text = (f"expected calibration error {ece:.3f} [{ece_ci['low']:.3f}, "
                f"{ece_ci['high']:.3f}]; " if ece is not None and ece_ci.get("low") is not None
                and ece_ci.get("high") is not None else "")
    skipped = (f"<p>Refusal classifier: not evaluated ({_e(clf['skipped'])}).</p>"
               if clf.get("skipped") else "")
    # A figure without its interval is left out (too few held-out pairs give none).
    corr = [length.get(k) for k in ("value", "ci_low", "ci_high")]
    corr_text = (f"correlation of reward with response length {corr[0]:.3f} "
                 f"[{corr[1]:.3f}, {corr[2]:.3f}]. " if None not in corr else "")
    loss = sft.get("train_loss")
    return ("<h2>Model refresh</h2>"
            + interval_chart(rows, title="Held-out accuracy (95% CI)") + skipped
            + f"<p>Reward model: {_e(ece_text)}{_e(corr_text)}A high length "
            "correlation with poor accuracy where the chosen answer is shorter is the "
            "proxy-reward pressure the bias probes exist to catch.</p>"
            f"<p>SFT refresh (tiny model, completion-only loss): {_e(sft.get('steps'))} steps "
            f"on {_e(sft.get('n'))} demonstrations"
            + (f", train loss {loss:.3f}" if loss is not None else "") + ".</p>")


def _check_section(check: dict[str, Any], gate: dict[str, Any] | None) -> str:
    report = check.get("report", {})
    rows: list[Row] = []
    for metric in ("benign_refusal_rate", "unsafe_compliance_rate"):
        block = report.get("slices", {}).get("all", {}).get(metric)
        if not block:
            continue
        for side in ("reference", "candidate"):
            b = block[side]
            true = check.get("true_rates", {}).get(f"{side}.{metric}")
            rows.append((f"{side}: {metric.replace('_', ' ')}", b["rate"], b["ci_low"],
                         b["ci_high"], true[0] if true else None))
    # The decision after the sign-off, not the check's own (made before anyone signed).
    if gate is not None:
        reasons = list(gate.get("reasons") or [])
        label = f"Reasons of the final decision ({gate.get('outcome')})"
    else:
        reasons = list(report.get("gate", {}).get("reasons", []))
        label = f"Reasons of the check's decision ({report.get('outcome')})"
    listed = ("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>" if reasons
              else "<p>none: all criteria met</p>")
    return ("<h2>Regression check</h2><p>Judgments by the refusal classifier trained from "
            "the reviewed labels; diamonds are the simulator's true rates.</p>"
            + interval_chart(rows, title="Rates on the held-out suite (95% Wilson CI)",
                             lo=0.0, hi=0.6)
            + f"<p>{_e(label)}:</p>" + listed
            + f"<p>Full report: <code>{_e(check.get('report_html'))}</code></p>")


def _generic_section(title: str, data: dict[str, Any]) -> str:
    return (f"<h2>{_e(title)}</h2><pre>{_e(json.dumps(data, indent=1, default=str)[:8000])}"
            "</pre>")


CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#1b1b1b}table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #bbb;padding:4px 8px;text-align:left}th{background:#eef2f7}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px}code{background:#f1f1f1}
.verdict{font-size:1.3em;padding:.4em .8em;border-radius:4px;display:inline-block}
.pass{background:#dff0d8}.block{background:#f8d7da}"""


def _still_open(summary: dict[str, Any]) -> int | None:
    for step in ("review-2", "review-1"):
        if "still_needs_adjudication" in summary.get(step, {}):
            return int(summary[step]["still_needs_adjudication"])
    return None


def render_report(summary: dict[str, Any], artifacts: dict[str, Any]) -> str:
    steps = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v.get('seconds'))}</td></tr>"
                    for k, v in summary.items())
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<title>hilt demo report</title>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
             "style-src 'unsafe-inline'; img-src data:\">",
             f"<style>{CSS}</style></head><body><h1>hilt demo: the loop on a simulated "
             "stream</h1>"]
    gate = artifacts.get("gate")
    if gate:
        cls = "pass" if gate.get("outcome") == "pass" else "block"
        parts.append(f"<p class='verdict {cls}'>Release gate: {_e(gate.get('outcome'))}</p>"
                     f"<p>{_e(gate.get('why'))}</p>")
    still_open = _still_open(summary)
    if still_open is not None:
        parts.append(f"<p>Cases still waiting for adjudication at the end of the review: "
                     f"<strong>{still_open}</strong>.</p>")
    if "quality" in artifacts:
        parts.append(_quality_section(artifacts["quality"]))
    if "drift" in artifacts:
        parts.append(_drift_section(artifacts["drift"]))
    if "datasets" in artifacts:
        parts.append(_datasets_section(artifacts["datasets"]))
    if "models" in artifacts:
        parts.append(_models_section(artifacts["models"]))
    if "check" in artifacts:
        parts.append(_check_section(artifacts["check"], gate))
    parts.append(f"<h2>Steps</h2><table><tr><th>step</th><th>seconds</th></tr>{steps}"
                 "</table>")
    parts.append("<h2>Summary</h2><pre>"
                 f"{_e(json.dumps(summary, indent=1, default=str))}</pre></body></html>")
    return "".join(parts)


def write_report(path: Path, summary: dict[str, Any], artifacts: dict[str, Any]) -> Path:
    """Write the report through a temporary file of a unique name beside ``path``
    (two runs never share one), renamed over ``path`` once complete and removed on
    any failure. The file gets the mode ``open()`` would give it."""
    from hilt.quality.csv_io import write_text_atomic

    write_text_atomic(path, render_report(summary, artifacts))
    return path
