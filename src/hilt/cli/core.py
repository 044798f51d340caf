"""Core commands: init, schema (filled in below)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the core commands."""
