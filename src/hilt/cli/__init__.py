"""The ``hilt`` command line. Thin: each command parses arguments and calls a stage module.

Every stage contributes its commands from its own module in this package through a
``register(app)`` function; heavy libraries (torch, transformers) are imported inside
the commands that need them so that ``hilt --help`` stays instant.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import typer

from hilt.errors import HiltError

app = typer.Typer(name="hilt",
                  help="hilt: the human-in-the-loop toolkit for assistant post-training.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.callback()
def _check_databases(ctx: typer.Context) -> None:
    # Every hilt database a command opens is checked, at its first connection, to hold
    # the schema this hilt was written for (hilt.store.db.check_schema_on_connect), so
    # an old schema is named as such instead of failing later on a missing column. The
    # listener lives as long as the command (tests run many commands in one process).
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from hilt.store.engine_scope import collect_engines, dispose_engines

    if event.contains(Engine, "engine_connect", _check_schema):
        return  # a command run inside another: the outer one removes the listener
    event.listen(Engine, "engine_connect", _check_schema)
    ctx.call_on_close(lambda: event.remove(Engine, "engine_connect", _check_schema))
    # The engines the command made are closed with it (it may run inside a longer-lived
    # process), so their pooled connections do not outlive it.
    made = collect_engines()
    ctx.call_on_close(lambda: dispose_engines(made))


def _check_schema(conn: Any) -> None:
    from hilt.store.db import check_schema_on_connect  # loaded by whoever made the engine

    check_schema_on_connect(conn)


_MODULES = ("core", "review", "quality", "data", "train", "evals", "gate", "drift", "ops",
            "demo")


def _register_all() -> None:
    import importlib

    for name in _MODULES:
        module = importlib.import_module(f"hilt.cli.{name}")
        module.register(app)


_register_all()


def database_error_message(exc: BaseException) -> str | None:
    """One line for a database failure (no schema, unreachable server), or None.

    Errors of the drivers themselves count too: a few paths use the driver's cursor
    directly, and their errors do not pass through SQLAlchemy."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    driver_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    try:
        import psycopg

        driver_errors += (psycopg.Error,)
    except ImportError:  # pragma: no cover - installed with hilt
        pass
    if not isinstance(exc, (SQLAlchemyError, *driver_errors)):
        return None
    detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [repr(exc)])[0]
    if "no such table" in detail or ("does not exist" in detail and "relation" in detail):
        return (f"error: the database has no hilt schema ({detail}); "
                "create it with: hilt init --db URL")
    return f"error: database: {detail}"


def debug_enabled() -> bool:
    """``HILT_DEBUG`` is on for ``1``, ``true`` or ``yes`` (any case); anything else,
    ``0`` included, is off."""
    return os.environ.get("HILT_DEBUG", "").strip().lower() in ("1", "true", "yes")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread (:func:`stop_on_sigterm`). Like Ctrl-C's
    KeyboardInterrupt it is no ``Exception``: ``except Exception`` does not swallow it,
    while every ``finally`` and context manager on the way out runs."""


def stop_on_sigterm() -> Any:
    """Make SIGTERM end a command the way Ctrl-C does: as an exception, so that staging
    folders and temporary files are removed and open transactions roll back on the way
    out. ``hilt jobs cancel``, a worker that shuts down and the parent-death signal of
    a job's child all stop a command with SIGTERM. A second SIGTERM during that
    clean-up ends the process at once. Commands that serve (``hilt serve``, ``hilt
    worker``) install handlers of their own. Returns the handler it replaced."""
    def terminate(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated

    with suppress(ValueError):  # not the main thread: leave signals alone
        return signal.signal(signal.SIGTERM, terminate)
    return None


def _end_by(signum: int) -> None:
    """End the process by the signal itself, its clean-up done: whoever waits for it (a
    shell, a service manager, the job runner) sees it stopped by that signal, as it
    would have been without the handler."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # only where the signal does not end the process at once


class _ReaderGoneSafe(io.RawIOBase):
    """The process's standard output, as a raw stream whose writes cannot fail because
    the reader went away (``hilt check | head -3``, ``hilt gate verify D | true``).

    Python ignores SIGPIPE, so such a write raises BrokenPipeError, wherever in a
    command it happens: a command would end with that error instead of its own exit
    status (click turns it into 1, which for ``hilt check`` means "blocks"). Here the
    first such write points the descriptor at the null device (as in the recipe of the
    Python documentation, "Note on SIGPIPE") and reports the bytes as written, so the
    command runs to its end and exits with the status it has: 0 pass, 1 block, 2 error
    for ``hilt check``; 0 agrees, 1 disagrees for ``hilt gate verify``."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._fd)
            os.close(devnull)
            return len(memoryview(data))


@contextmanager
def _stdout_reader_may_leave() -> Iterator[None]:
    """Run with :class:`_ReaderGoneSafe` under ``sys.stdout``. Only the process's own
    standard output is wrapped: one a caller put in its place (tests capturing output)
    is left as it is, and so is everything after the command."""
    original: Any = sys.stdout
    fd = None
    if original is sys.__stdout__ and original is not None:
        with suppress(AttributeError, OSError, ValueError):  # no descriptor: no guard
            fd = original.fileno()
    if fd is None:
        yield
        return
    with suppress(OSError):
        original.flush()
    guarded = io.TextIOWrapper(
        io.BufferedWriter(_ReaderGoneSafe(fd)), encoding=original.encoding,
        errors=original.errors, line_buffering=bool(original.line_buffering))
    sys.stdout = guarded
    try:
        yield
    finally:
        sys.stdout = original
        with suppress(Exception):
            guarded.flush()
            guarded.detach()  # the descriptor stays open: it is the process's stdout


def main() -> None:
    previous = stop_on_sigterm()
    try:
        with _stdout_reader_may_leave():
            _run()
    finally:
        if previous is not None:  # main() may run inside another program (tests)
            signal.signal(signal.SIGTERM, previous)


def _run() -> None:
    try:
        app(standalone_mode=True)
    except Terminated:
        typer.echo("error: terminated (SIGTERM)", err=True)
        _end_by(signal.SIGTERM)
    except HiltError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        # a database that is missing its schema or cannot be reached is a usage error
        # (exit 2, one line), not a crash; anything else keeps its traceback
        message = database_error_message(exc)
        if message is None or debug_enabled():
            raise  # HILT_DEBUG=1 keeps the traceback of a database error too
        typer.echo(message, err=True)
        sys.exit(2)
