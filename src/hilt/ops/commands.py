"""Training and evaluation jobs as child processes running hilt's fixed CLI contracts.

A child process, rather than a thread, because a run must be stoppable at once (a
thread cannot be killed), must not share the API worker's memory or GPU, and must be
launchable through ``accelerate launch`` on GPU machines: set ``HILT_TRAIN_LAUNCHER``
(e.g. ``accelerate launch --num_processes 4 -m``) and training commands start as
``<launcher> hilt train reward …`` instead of ``python -m hilt train reward …``.

Progress is the last ``NN%`` that tqdm wrote to the child's stderr; each progress report
renews the job's lease and reads its cancel flag, and a cancellation terminates the
child (SIGTERM, then SIGKILL after 10 s).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any

from hilt.errors import InputError
from hilt.ops.jobs import JobCancelled, JobContext

# kind -> (CLI words, required params, optional params); params map to --flags.
CONTRACTS: dict[str, tuple[list[str], tuple[str, ...], tuple[str, ...]]] = {
    "train.reward": (["train", "reward"], ("pairs", "out"), ()),
    "eval.reward": (["eval", "reward"], ("model", "pairs"), ()),
    "train.classifier": (["train", "classifier"],
                         ("data", "text_field", "label_field", "out"), ()),
    "eval.check": (["check"], ("suite", "candidate", "reference", "out"), ("gate", "scorer")),
}
TRAINING = {"train.reward", "train.classifier"}
# Exit codes that are a finished run, not a failure (``hilt check``: 1 = gate blocks).
FINISHED_CODES = {"eval.check": {0, 1}}
_PERCENT = re.compile(rb"(\d{1,3})%\|")


def build_argv(kind: str, params: dict[str, Any]) -> list[str]:
    """The child's command line from validated parameters (no shell, no free flags)."""
    words, required, optional = CONTRACTS[kind]
    argv: list[str] = []
    for name in required + optional:
        value = params.get(name)
        if value is None:
            if name in required:
                raise InputError(f"{kind} needs parameter {name!r}", field=name)
            continue
        if not isinstance(value, str) or not value or value.startswith("-"):
            raise InputError(f"{name} must be a path or name, not {value!r}", field=name)
        argv += ["--" + name.replace("_", "-"), value]
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        raise InputError(f"{kind} does not take {unknown}", field=unknown[0])
    launcher = os.environ.get("HILT_TRAIN_LAUNCHER") if kind in TRAINING else None
    prefix = shlex.split(launcher) + ["hilt"] if launcher else [sys.executable, "-m", "hilt"]
    return prefix + words + argv


def last_percent(stderr_tail: bytes) -> float | None:
    found = _PERCENT.findall(stderr_tail)
    return int(found[-1]) / 100.0 if found else None


def run_contract(ctx: JobContext, kind: str, *, poll_s: float = 0.5,
                 report_every_s: float = 2.0) -> dict[str, Any]:
    argv = build_argv(kind, ctx.params)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        last_report = 0.0
        try:
            while child.poll() is None:
                time.sleep(poll_s)
                if time.monotonic() - last_report >= report_every_s:
                    last_report = time.monotonic()
                    err.seek(max(0, err.seek(0, 2) - 4096))
                    fraction = last_percent(err.read())
                    ctx.progress(fraction if fraction is not None else 0.0,
                                 f"{kind}: child process {child.pid} running")
        except JobCancelled:
            _stop(child)
            raise
        except BaseException:
            _stop(child)
            raise
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if child.returncode not in FINISHED_CODES.get(kind, {0}):
        raise RuntimeError(f"{' '.join(argv[:6])} exited with {child.returncode}: "
                           f"{stderr[-2000:]}")
    result: dict[str, Any] = {"argv": argv, "exit_code": child.returncode}
    try:
        result["output"] = json.loads(stdout)
    except ValueError:
        result["output_tail"] = stdout[-2000:]
    return result


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
