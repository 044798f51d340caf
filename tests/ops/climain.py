"""Run ``hilt`` through its real entry point in-process: exit code and output.

A command run this way costs what it does, not a new interpreter that imports torch
and transformers again (about five seconds each on two shared cores), so tests that
only read a command's output and exit code use it; tests of what only a process shows
(signals, locks held by another process, a killed run) keep ``subprocess``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path


def run_main(*args: str) -> tuple[int, str]:
    """``hilt ARGS`` as ``hilt.cli.main`` runs it (errors become exit 2 and one line)."""
    out = io.StringIO()
    code = _main(args, out, out)
    return code, out.getvalue()


def run_hilt(args: list[str], *, cwd: Path | None = None,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``hilt ARGS`` in this process as a subprocess would run it: standard output and
    error apart, in folder ``cwd``, with ``env`` as the whole environment (default:
    this one's), all three put back afterwards."""
    out, err = io.StringIO(), io.StringIO()
    with _environment(env), _folder(cwd):
        code = _main(tuple(args), out, err)
    return subprocess.CompletedProcess(["hilt", *args], code, out.getvalue(), err.getvalue())


def _main(args: tuple[str, ...], out: io.StringIO, err: io.StringIO) -> int:
    from hilt.cli import main

    argv = sys.argv
    sys.argv = ["hilt", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv


@contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def _folder(cwd: Path | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    before = Path.cwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)
