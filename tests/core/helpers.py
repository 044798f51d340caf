"""Running the CLI in-process against one database, as the CLI tests do."""

from __future__ import annotations

from typer.testing import CliRunner

from hilt.cli import app
from hilt.errors import InputError


def cli_input_error(db: str, *args: str) -> InputError:
    """The InputError ``hilt ARGS --db DB`` stops with (the entry point prints it as
    ``error: ...`` and exits 2)."""
    result = CliRunner().invoke(app, [*args, "--db", db])
    assert isinstance(result.exception, InputError), (result.exception, result.output)
    return result.exception
