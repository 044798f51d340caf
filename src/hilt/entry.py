"""The ``hilt`` console script's entry point.

Loading the command line takes about a second (every stage registers its commands, and
those import SQLAlchemy and pydantic). A Ctrl-C in that second would otherwise print a
traceback of whatever module was loading; here it ends like a Ctrl-C during a command:
one line and exit status 130.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from hilt.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    run()
