"""Training and evaluation jobs as child processes running hilt's fixed CLI contracts.

A child process, rather than a thread, because a run must be stoppable at once (a
thread cannot be killed), must not share the API worker's memory or GPU, and must be
launchable through ``accelerate launch`` on GPU machines: set ``HILT_TRAIN_LAUNCHER``
(e.g. ``accelerate launch --num_processes 4 -m``) and training commands start as
``<launcher> hilt train reward …`` instead of ``python -m hilt train reward …``.

Progress is the last ``NN%`` that tqdm wrote to the child's stderr; each progress report
renews the job's lease and reads its cancel flag, and a cancellation terminates the
child (SIGTERM, then SIGKILL after 10 s).

A child never outlives the process that runs its job unattended: it starts in a session
(process group) of its own, so stopping it stops whatever it launched too; a worker
that shuts down terminates its children first (:func:`stop_children`, called by the
scheduler), and on Linux a child also gets SIGTERM from the kernel if the worker dies
without shutting down (``PR_SET_PDEATHSIG``), e.g. when it is killed with SIGKILL.

Every file a job reads or writes lies inside one folder, the job root
(``HILT_JOB_ROOT``, default ``$HILT_HOME/jobs``): path parameters are resolved under it
(symbolic links followed) and one that ends up outside it, an absolute path elsewhere
or a ``..`` escape, is refused when the job is queued and again when it runs. Jobs are
started by lead and service tokens over HTTP, and a job's ``out`` is written, its inputs
read and its ``scorer`` unpickled (which runs code) by the worker; without the root a
token could read, overwrite or execute any file the worker can reach. An operator on the
machine who needs other paths runs the command itself (``hilt train reward ...``)
instead of queueing a job.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from hilt.config import hilt_home
from hilt.errors import InputError
from hilt.ops.jobs import JobCancelled, JobContext, WorkerStopped
from hilt.train.options import check_fraction, check_seed, check_whole_epochs

# kind -> (CLI words, required params, optional params); params map to --flags.
CONTRACTS: dict[str, tuple[list[str], tuple[str, ...], tuple[str, ...]]] = {
    "train.reward": (["train", "reward"], ("out",),
                     ("pairs", "dataset", "override_revoked", "eval_pairs", "epochs",
                      "seed", "held_out", "split_seed")),
    "eval.reward": (["eval", "reward"], ("model", "pairs"), ()),
    "train.classifier": (["train", "classifier"], ("out",),
                         ("data", "text_field", "label_field", "dataset", "override_revoked")),
    "eval.check": (["check"], ("suite", "candidate", "reference", "out"), ("gate", "scorer")),
}
# Training kinds read either a file or a stored dataset version (so the model's
# lineage names it): kind -> (file param, params that go with the file only).
TRAINING_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "train.reward": ("pairs", ()),
    "train.classifier": ("data", ("text_field", "label_field")),
}
TRAINING = {"train.reward", "train.classifier"}
# The parameters that name files or folders (the others are field names).
PATH_PARAMS = frozenset({"pairs", "out", "model", "data", "suite", "candidate", "reference",
                         "gate", "scorer", "eval_pairs"})
# The ones the command reads (``check_inputs``): a file, or one that may be a folder.
INPUT_PARAMS: dict[str, str] = {"pairs": "file", "data": "file", "suite": "file",
                                "candidate": "file", "reference": "file", "gate": "file",
                                "model": "path", "scorer": "path", "eval_pairs": "file"}
# The numbers, each checked as the command line checks its option (a JSON number, or
# the text of one as ``hilt jobs start -p seed=3`` gives it).
NUMBER_PARAMS: dict[str, Callable[[Any, str], Any]] = {
    "epochs": check_whole_epochs, "seed": check_seed, "split_seed": check_seed,
    "held_out": check_fraction}
# Exit codes that are a finished run, not a failure (``hilt check``: 1 = gate blocks).
FINISHED_CODES = {"eval.check": {0, 1}}
_PERCENT = re.compile(rb"(\d{1,3})%\|")


def job_root() -> Path:
    """The folder that jobs' path parameters are resolved in (see the module doc)."""
    raw = os.environ.get("HILT_JOB_ROOT", "").strip()
    return Path(raw) if raw else hilt_home() / "jobs"


def confine(name: str, value: str, root: Path) -> str:
    """``value`` resolved under ``root``, as an absolute path; an InputError if it ends
    up outside (absolute elsewhere, ``..``, or a link leading out)."""
    base = root.resolve()
    try:
        target = (base / value).resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a link loop
        raise InputError(f"{name}: not a usable path ({exc})", field=name) from None
    if not target.is_relative_to(base):
        raise InputError(f"{name} must be a path inside the job folder {base} "
                         f"(HILT_JOB_ROOT); {value!r} is outside it", field=name)
    return str(target)


def _check_training_source(kind: str, params: dict[str, Any]) -> None:
    """A training job names its file or a dataset version, exactly one; the file's field
    names go with the file, ``override_revoked`` with the dataset version."""
    if kind not in TRAINING_SOURCES:
        return
    file_param, with_file = TRAINING_SOURCES[kind]
    given = [name for name in (file_param, "dataset") if params.get(name) is not None]
    if len(given) != 1:
        raise InputError(f"{kind} needs {file_param!r} or 'dataset' (exactly one)",
                         field="dataset" if given else file_param)
    if given == ["dataset"]:
        extra = [name for name in with_file if params.get(name) is not None]
        if extra:
            raise InputError(f"{extra[0]} applies to {file_param!r} only, not to a "
                             "dataset version", field=extra[0])
        return
    for name in with_file:
        if params.get(name) is None:
            raise InputError(f"{kind} with {file_param!r} needs parameter {name!r}",
                             field=name)
    if params.get("override_revoked") is not None:
        raise InputError("override_revoked applies to a dataset version only",
                         field="override_revoked")


def _number(name: str, value: Any) -> Any:
    """A numeric parameter as a number: JSON numbers as they are, text parsed."""
    if not isinstance(value, str):
        return value
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            continue
    raise InputError(f"{name} must be a number, got {value!r}", field=name)


def build_argv(kind: str, params: dict[str, Any]) -> list[str]:
    """The child's command line from validated parameters (no shell, no free flags;
    paths confined to :func:`job_root`)."""
    words, required, optional = CONTRACTS[kind]
    _check_training_source(kind, params)
    root = job_root()
    argv: list[str] = []
    for name in required + optional:
        value = params.get(name)
        if value is None:
            if name in required:
                raise InputError(f"{kind} needs parameter {name!r}", field=name)
            continue
        if name in NUMBER_PARAMS:
            argv += ["--" + name.replace("_", "-"),
                     str(NUMBER_PARAMS[name](_number(name, value), name))]
            continue
        if not isinstance(value, str) or not value or value.startswith("-"):
            raise InputError(f"{name} must be a path or name, not {value!r}", field=name)
        if name in PATH_PARAMS:
            value = confine(name, value, root)
        argv += ["--" + name.replace("_", "-"), value]
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        raise InputError(f"{kind} does not take {unknown}", field=unknown[0])
    launcher = os.environ.get("HILT_TRAIN_LAUNCHER") if kind in TRAINING else None
    prefix = shlex.split(launcher) + ["hilt"] if launcher else [sys.executable, "-m", "hilt"]
    return prefix + words + argv


def check_inputs(kind: str, params: dict[str, Any]) -> None:
    """The files (and folders) a job of ``kind`` reads exist now, in the job root: a
    misspelt name is refused when the job is queued (``hilt jobs start``), not found by
    the worker later. A job queued in code or over HTTP may name an input that an
    earlier job is still to write, so :func:`build_argv` does not ask for this."""
    if kind not in CONTRACTS:
        return
    _, required, optional = CONTRACTS[kind]
    root = job_root()
    for name in required + optional:
        value = params.get(name)
        if name not in INPUT_PARAMS or not isinstance(value, str) or not value:
            continue
        target = Path(confine(name, value, root))
        if not target.exists():
            raise InputError(f"not found in the job folder {root}", file=value, field=name)
        if INPUT_PARAMS[name] == "file" and not target.is_file():
            raise InputError("not a file", file=value, field=name)


def input_error_line(stderr: str) -> str | None:
    """The child's own error line (``error: FILE, line N, field F: reason``), which a
    command that exits 2 for bad input prints last."""
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    return lines[-1].removeprefix("error: ") if lines else None


def last_percent(stderr_tail: bytes) -> float | None:
    found = _PERCENT.findall(stderr_tail)
    return int(found[-1]) / 100.0 if found else None


# Children running now, and those stopped because their worker is shutting down.
_CHILDREN: set[subprocess.Popen[bytes]] = set()
_SHUT_DOWN: set[int] = set()
_CHILDREN_LOCK = threading.Lock()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send the child SIGTERM when its parent dies;
    ``None`` elsewhere. The libc function is looked up here, before the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def stop_children(timeout_s: float = 10.0) -> int:
    """Terminate every running child of this process (a worker shutting down): SIGTERM
    to each child's process group, SIGKILL to those still running after ``timeout_s``.
    Their jobs fail with "the worker shut down". Returns how many were running."""
    with _CHILDREN_LOCK:
        children = [c for c in _CHILDREN if c.poll() is None]
        _SHUT_DOWN.update(c.pid for c in children)
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()
    return len(children)


def child_environment(engine: Engine) -> dict[str, str]:
    """The worker's environment with ``HILT_DATABASE_URL`` set to the database the job
    came from: the child registers its model version (and reads datasets) there, not in
    whatever database its working folder or environment would name."""
    env = dict(os.environ)
    env["HILT_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    return env


def run_contract(ctx: JobContext, kind: str, *, poll_s: float = 0.5,
                 report_every_s: float = 2.0) -> dict[str, Any]:
    argv = build_argv(kind, ctx.params)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 env=child_environment(ctx.engine),
                                 start_new_session=True, preexec_fn=_die_with_parent())
        with _CHILDREN_LOCK:
            _CHILDREN.add(child)
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
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(child)
                stopped_by_shutdown = child.pid in _SHUT_DOWN
                _SHUT_DOWN.discard(child.pid)
        if stopped_by_shutdown:
            raise WorkerStopped(f"{kind}: child process {child.pid} stopped because the "
                                "worker shut down")
        out.seek(0)
        stdout = out.read().decode(errors="replace")
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if child.returncode not in FINISHED_CODES.get(kind, {0}):
        reason = input_error_line(stderr) if child.returncode == 2 else None
        if reason is not None:  # bad input (exit 2): its one line, not the whole stderr
            raise InputError(f"{kind}: {reason}")
        raise RuntimeError(f"{' '.join(argv[:6])} exited with {child.returncode}: "
                           f"{stderr[-2000:]}")
    result: dict[str, Any] = {"argv": argv, "exit_code": child.returncode}
    try:
        result["output"] = json.loads(stdout)
    except ValueError:
        result["output_tail"] = stdout[-2000:]
    return result


def _signal_group(child: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The child leads its own process group: what it launched (accelerate's workers)
    # gets the signal too.
    if hasattr(os, "killpg"):
        try:
            os.killpg(child.pid, sig)
            return
        except (ProcessLookupError, PermissionError):
            pass
    if child.poll() is None:
        child.send_signal(sig)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    _signal_group(child, signal.SIGTERM)
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _signal_group(child, signal.SIGKILL)
        child.wait()
