"""docs/evals.md: its synopses list every option, its facts examples behave as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from hilt.cli import app
from hilt.errors import InputError
from hilt.evals.facts import load_facts

DOC = Path(__file__).resolve().parents[2] / "docs" / "evals.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def _blocks(section: str, language: str = "") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("command,section", [("check", "Regression safety checks"),
                                             ("generate", "Generating candidate outputs")])
def test_the_synopsis_lists_every_option(command: str, section: str) -> None:
    if section.startswith("Regression"):  # the title line, before any "## "
        text = DOC.read_text(encoding="utf-8").split("\n## ", 1)[0]
    else:
        text = _section(section)
    synopsis = "\n".join(b for b in _blocks(text) if f"hilt {command} " in b)
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    # a hidden option is refused when given (hilt check --resamples): not in the synopsis
    options = {o for p in click_command.params if not getattr(p, "hidden", False)
               for o in p.opts if o.startswith("--")}
    listed = set(re.findall(r"--[a-z][a-z-]*", synopsis))
    assert options - {"--help"} - listed == set()


def test_the_facts_examples_behave_as_documented(tmp_path: Path) -> None:
    good, bad = _blocks(_section("Recorded facts"), "yaml")
    path = tmp_path / "facts.yaml"
    path.write_text(good, encoding="utf-8")
    facts = load_facts(path)
    assert facts["lineage"]["status"] == "known"
    assert facts["lineage"]["dataset_versions"][0]["id"] == "sft-v7"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_facts(path)
    documented = re.search(r"prints `error: (.*?)`\.", " ".join(
        _section("Recorded facts").split()))
    assert documented is not None
    assert str(caught.value) == documented.group(1).replace(str(path.name), str(path))
