"""``--after`` for list commands that read a page at a time, and the note that leads
to the next page: ``more: --after CURSOR`` on stderr (stdout keeps only the listing)."""

from __future__ import annotations

from typing import Annotated

import typer

AfterOption = Annotated[str | None, typer.Option(
    help="start after this cursor: the one the previous page printed on stderr as "
         "'more: --after CURSOR'")]

# The InputError of a malformed cursor names the option as the command line spells it.
AFTER_NAMED = {"after": "--after"}


def note_more(cursor: str | None) -> None:
    """Say how to read the next page, when there is one."""
    if cursor is not None:
        typer.echo(f"more: --after {cursor}", err=True)
