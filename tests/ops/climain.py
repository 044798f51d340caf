"""Run ``hilt`` through its real entry point in-process: exit code and output."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout


def run_main(*args: str) -> tuple[int, str]:
    """``hilt ARGS`` as ``hilt.cli.main`` runs it (errors become exit 2 and one line)."""
    from hilt.cli import main

    argv, out = sys.argv, io.StringIO()
    sys.argv = ["hilt", *args]
    try:
        with redirect_stdout(out), redirect_stderr(out):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue()
