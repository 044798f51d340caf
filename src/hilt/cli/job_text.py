"""Jobs as text for the terminal: the tables and records ``hilt jobs`` prints without
``--json`` (pure formatting of the job views :mod:`hilt.ops.jobs` returns)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def when(iso: str | None) -> str:
    """A stored time (UTC) to the second, for tables: ``2025-01-31 14:02:07Z``."""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%SZ") if iso else "-"


def lease_text(lease: dict[str, Any] | None) -> str:
    if lease is None:
        return "-"
    until = "expired" if lease["expired"] else "until"
    return f"{lease['worker']} {until} {when(lease['expires_at'])}"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)
                               ).rstrip() for r in [header, *rows])


def jobs_table(views: list[dict[str, Any]]) -> str:
    return table(["ID", "KIND", "STATUS", "PROGRESS", "ATTEMPTS", "CREATED", "LEASE"],
                  [[v["id"], v["kind"], v["status"], f"{v['progress']:.0%}",
                    f"{v['attempts']}/{v['max_attempts']}", when(v["created_at"]),
                    lease_text(v["lease"])] for v in views])


def job_record(v: dict[str, Any]) -> str:
    """One job as ``hilt jobs show`` prints it."""
    lease = v["lease"]
    if lease is None:
        held = "-"
    else:
        where = (f" (host {lease['host']}, pid {lease['pid']})"
                 if lease["host"] is not None else "")
        held = (f"held by {lease['worker']}{where}, "
                + ("expired at " if lease["expired"] else "until ")
                + when(lease["expires_at"]))
    running = v["status"] == "running"
    # The note is the last progress report ("eval.check: child process 16132 running"):
    # current only while the job runs, and shown apart, as a past report, after that.
    note = v["progress_note"]
    progress = f"{v['progress']:.0%}" + (f" ({note})" if note and running else "")
    fields = [("status", v["status"] + (", cancel requested" if v["cancel_requested"]
                                        and running else "")),
              ("attempts", f"{v['attempts']} of {v['max_attempts']}"),
              ("progress", progress)]
    if note and not running:
        fields.append(("last note", f"{json.dumps(note)}, reported while attempt "
                                    f"{v['attempts']} ran"))
    fields += [("lease", held),
               ("created", f"{when(v['created_at'])} by {v['created_by']}"),
               ("started", when(v["started_at"])), ("finished", when(v["finished_at"])),
               ("workers", ", ".join(v["workers"]) or "-"),
               ("params", json.dumps(v["params"], sort_keys=True))]
    if v["result"] is not None:
        fields.append(("result", json.dumps(v["result"], sort_keys=True)))
    lines = [f"{v['id']}  {v['kind']}"] + [f"  {k:<9} {text}" for k, text in fields]
    if v["error"]:
        lines += ["  error", *("    " + line for line in v["error"].rstrip().splitlines())]
    return "\n".join(lines)


def outcome_text(job: dict[str, Any]) -> str:
    """How a job that ``hilt jobs work`` ran ended, in a few words."""
    error = (job["error"] or "").strip().splitlines()
    why = f": {error[-1]}" if error else ""
    if job["outcome"] == "queued":  # a failed attempt, retried later
        return (f"attempt {job['attempt']} of {job['max_attempts']} failed, queued again"
                f"{why}")
    if job["outcome"] == "lost":
        return "lease lost: another worker took the job over"
    return job["outcome"] + (why if job["outcome"] == "failed" else "")
