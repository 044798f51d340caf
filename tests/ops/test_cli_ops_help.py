"""The help of the operations commands is plain text: the terminal shows it as written,
so reStructuredText markup (double backticks) would appear literally."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hilt.cli import app


def _ops_commands() -> list[tuple[str, ...]]:
    """The path (``jobs start``) of every command defined in hilt.cli.ops."""
    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        elif command.callback is not None \
                and command.callback.__module__ == "hilt.cli.ops":
            found.append(path)

    walk(typer.main.get_command(app), ())
    return found


OPS_COMMANDS = _ops_commands()


def test_the_operations_commands_are_all_found() -> None:
    assert {("worker",), ("jobs", "start"), ("jobs", "show"), ("webhook", "add"),
            ("backup",), ("metrics",)} <= set(OPS_COMMANDS)


@pytest.mark.parametrize("path", OPS_COMMANDS, ids=" ".join)
def test_help_has_no_double_backticks(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "``" not in result.output, result.output
