"""The documentation that is generated from the code is up to date."""

from __future__ import annotations

from pathlib import Path

from hilt.cli.reference import missing_help, render

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_matches_the_commands() -> None:
    committed = (REPO / "docs" / "cli.md").read_text()
    assert committed == render(), "run: python -m hilt.cli.reference > docs/cli.md"


def test_every_command_option_and_argument_has_help() -> None:
    import typer

    from hilt.cli import app

    assert missing_help(typer.main.get_command(app)) == []


def test_missing_help_names_what_lacks_it() -> None:
    import typer

    bare = typer.Typer()

    @bare.command()
    def first(path: str, limit: int = 3) -> None:
        pass

    @bare.command()
    def second(name: str = typer.Option("x", help="a name")) -> None:
        """Documented."""

    assert missing_help(typer.main.get_command(bare)) == [
        "first", "first: path", "first: limit"]


def test_readme_quickstart_has_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "python3 dev.py demo" in quickstart and "python3 dev.py test" in quickstart
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 dev.py test" in ci
