"""The ``hilt`` command line. Thin: each command parses arguments and calls a stage module.

Every stage contributes its commands from its own module in this package through a
``register(app)`` function; heavy libraries (torch, transformers) are imported inside
the commands that need them so that ``hilt --help`` stays instant.
"""

from __future__ import annotations

import sys

import typer

from hilt.errors import HiltError

app = typer.Typer(name="hilt",
                  help="hilt: the human-in-the-loop toolkit for assistant post-training.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

_MODULES = ("core", "review", "quality", "data", "train", "evals", "gate", "drift", "ops",
            "demo")


def _register_all() -> None:
    import importlib

    for name in _MODULES:
        module = importlib.import_module(f"hilt.cli.{name}")
        module.register(app)


_register_all()


def main() -> None:
    try:
        app(standalone_mode=True)
    except HiltError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
