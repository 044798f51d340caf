"""Generate the CLI reference (docs/cli.md) from the commands themselves.

    python -m hilt.cli.reference > docs/cli.md

A test checks that the committed page matches what this prints, so the reference
cannot drift from the code.
"""

from __future__ import annotations

import sys
from typing import Any

import typer


def _help(param: Any) -> str:
    # typer keeps an argument's help on the parameter; click's own arguments have none
    return " ".join((getattr(param, "help", None) or "").split()).replace("|", "\\|")


def missing_help(command: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Commands, options and arguments without a help text, as 'cmd sub: --option'."""
    if hasattr(command, "commands"):
        found = [] if not path or (command.help or "").strip() else [" ".join(path)]
        for name in sorted(command.commands):
            found += missing_help(command.commands[name], (*path, name))
        return found
    where = " ".join(path)
    found = [] if (command.help or "").strip() else [where]
    return found + [f"{where}: {param.name}" for param in command.params
                    if not getattr(param, "hidden", False) and not _help(param)]


# typer ships its own click; duck typing keeps this independent of which one.
def _params(command: Any) -> list[str]:
    lines = []
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument":
            lines.append(f"| `{str(param.name).upper()}` | argument"
                         f"{' (required)' if param.required else ''} | {_help(param)} |")
            continue
        if getattr(param, "hidden", False):
            continue
        names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        default = "" if param.default in (None, False, ()) or param.required else \
            f" (default: `{param.default}`)"
        lines.append(f"| {names} | {'required' if param.required else 'option'}{default} "
                     f"| {_help(param)} |")
    return lines


def _walk(command: Any, path: list[str], out: list[str]) -> None:
    if hasattr(command, "commands"):
        if path:
            out += [f"## `{' '.join(path)}`", "", (command.help or "").strip(), ""]
        for name in sorted(command.commands):
            _walk(command.commands[name], [*path, name], out)
        return
    out += [f"### `{' '.join(path)}`", "", (command.help or "").strip(), ""]
    params = _params(command)
    if params:
        out += ["| name | kind | help |", "|---|---|---|", *params, ""]


def render() -> str:
    from hilt.cli import app

    root = typer.main.get_command(app)
    out = ["# CLI reference", "",
           "Generated from the code by `python -m hilt.cli.reference`; do not edit by hand.",
           ""]
    _walk(root, [], out)
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
