"""Job kinds used only by the tests (loaded through ``HILT_JOB_MODULES``)."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy.orm import Session

from hilt.access import add_reviewer
from hilt.errors import InputError
from hilt.ops.jobs import JobContext, job_kind


@job_kind("test.slow_write", max_attempts=3, retry_delay_s=0.1)
def slow_write(ctx: JobContext, session: Session | None) -> dict[str, Any]:
    """Sleep inside the job's transaction, then add a reviewer (an audited effect)."""
    assert session is not None
    marker = ctx.params.get("marker_file")
    if marker:  # tells the test which process is running it
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()} {ctx.worker_id} {ctx.attempt}\n")
    time.sleep(float(ctx.params.get("sleep_s", 0)))
    add_reviewer(session, reviewer_id=ctx.params["reviewer_id"], actor=ctx.worker_id)
    return {"pid": os.getpid(), "worker": ctx.worker_id}


@job_kind("test.crash_midway", max_attempts=2, retry_delay_s=0.0)
def crash_midway(ctx: JobContext, session: Session | None) -> dict[str, Any]:
    """Write half of the effect, then fail."""
    assert session is not None
    add_reviewer(session, reviewer_id=f"{ctx.params['reviewer_id']}-{ctx.attempt}",
                 actor="job")
    session.flush()
    raise RuntimeError("crashed halfway")


@job_kind("test.long", transactional=False, max_attempts=1)
def long_job(ctx: JobContext, _session: Session | None) -> dict[str, Any]:
    """A long job reporting progress ten times."""
    steps = int(ctx.params.get("steps", 10))
    for step in range(steps):
        time.sleep(float(ctx.params.get("step_s", 0.05)))
        ctx.progress((step + 1) / steps, f"step {step + 1}")
    return {"steps": steps}


@job_kind("test.bad_input", max_attempts=3, retry_delay_s=0.0)
def bad_input(ctx: JobContext, _session: Session | None) -> dict[str, Any]:
    """Refuse the input, as a command does when a file is malformed."""
    raise InputError("missing required field", file=ctx.params["file"], line=3,
                     field="chosen")
