"""Regression checks: ``hilt check`` (contract 3) and the ``hilt suite`` registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hilt.config import database_url

suite_app = typer.Typer(help="Versioned, held-out eval suites and their variants.",
                        no_args_is_help=True)

DbOption = Annotated[str | None, typer.Option("--db", help="database URL "
                     "(default: $HILT_DATABASE_URL or sqlite:///.hilt/hilt.db)")]


def _engine(db: str | None) -> Any:
    from hilt.store.db import make_engine

    return make_engine(db or database_url())


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def check(
    suite: Annotated[Path, typer.Option(help="suite JSONL: id, prompt, slice, expect")],
    candidate: Annotated[Path, typer.Option(help="candidate responses JSONL")],
    reference: Annotated[Path, typer.Option(help="reference responses JSONL")],
    out: Annotated[Path, typer.Option(help="output folder for report.json/.html, "
                                           "decision.json")],
    gate: Annotated[Path | None, typer.Option(help="gate policy YAML (default: the "
                                                   "built-in policy)")] = None,
    scorer: Annotated[Path | None, typer.Option(help="trained refusal classifier folder, "
                                                     "for lines without a judgment")] = None,
    facts: Annotated[Path | None, typer.Option(help="recorded facts YAML/JSON: versions, "
                                                    "lineage, signoffs, records")] = None,
    suite_id: Annotated[str | None, typer.Option(help="suite id (default: file name); "
                                                      "NAME@VERSION of a registered suite "
                                                      "with --record")] = None,
    candidate_id: Annotated[str | None, typer.Option()] = None,
    reference_id: Annotated[str | None, typer.Option()] = None,
    alpha: Annotated[float, typer.Option(min=1e-6, max=0.5)] = 0.05,
    resamples: Annotated[int, typer.Option(min=100, help="bootstrap resamples")] = 2000,
    seed: Annotated[int, typer.Option()] = 0,
    record: Annotated[bool, typer.Option("--record", help="store the decision in the "
                                         "database and read registered suite facts")] = False,
    db: DbOption = None,
) -> None:
    """Compare candidate with reference on a suite and apply the gate.

    Exit code 0: the gate passes; 1: it blocks; 2: bad input or error.
    """
    from hilt.errors import HiltError

    try:
        code = _run_check(suite, candidate, reference, out, gate, scorer, facts, suite_id,
                          candidate_id, reference_id, alpha, resamples, seed, record, db)
    except HiltError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except Exception as exc:  # an unexpected failure must never read as "blocked" (1)
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def _run_check(suite: Path, candidate: Path, reference: Path, out: Path, gate: Path | None,
               scorer: Path | None, facts: Path | None, suite_id: str | None,
               candidate_id: str | None, reference_id: str | None, alpha: float,
               resamples: int, seed: int, record: bool, db: str | None) -> int:
    from hilt.evals.check import run_check

    extra: dict[str, Any] = {}
    engine = _engine(db) if record else None
    if engine is not None and suite_id:
        from hilt.gate.store import suite_records
        from hilt.store.db import transaction

        with transaction(engine) as session:
            found = suite_records(session, [suite_id])
        if found:
            extra["suites"] = found
    result = run_check(suite=suite, candidate=candidate, reference=reference, out=out,
                       gate=gate, scorer=scorer, facts=facts, suite_id=suite_id,
                       candidate_id=candidate_id, reference_id=reference_id, alpha=alpha,
                       resamples=resamples, seed=seed, extra_records=extra)
    if engine is not None:
        from hilt.gate.store import store_decision
        from hilt.store.db import transaction

        with transaction(engine) as session:
            store_decision(session, result.record, actor="cli")
    decision = result.record["decision"]
    typer.echo(f"gate: {result.record['outcome']} (decision {result.record['hash']})")
    for reason in decision["reasons"]:
        typer.echo(f"  - {reason}")
    typer.echo(f"report: {out / 'report.html'}")
    return result.exit_code


@suite_app.command("register")
def suite_register(
    file: Annotated[Path, typer.Argument(help="suite JSONL")],
    name: Annotated[str, typer.Option()],
    version: Annotated[str, typer.Option()],
    prompt_template: Annotated[str | None, typer.Option(help="template the prompts are "
                                                             "rendered under")] = None,
    role_format: Annotated[str | None, typer.Option()] = None,
    language: Annotated[str | None, typer.Option()] = None,
    variant_of: Annotated[str | None, typer.Option(help="NAME@VERSION of the base suite "
                                                        "(same item ids)")] = None,
    heldout: Annotated[bool, typer.Option("--heldout/--not-heldout")] = True,
    description: Annotated[str, typer.Option()] = "",
    actor: Annotated[str, typer.Option(help="who registers it")] = "cli",
    db: DbOption = None,
) -> None:
    """Register a suite version (held-out by default) or a template/language variant."""
    from hilt.evals.files import parse_suite
    from hilt.evals.registry import register_suite
    from hilt.store.db import transaction

    items = parse_suite(file)
    with transaction(_engine(db)) as session:
        row = register_suite(session, items, name=name, version=version, actor=actor,
                             heldout=heldout, prompt_template=prompt_template,
                             role_format=role_format, language=language,
                             variant_of=variant_of, description=description)
        _echo_json(_suite_dict(row))


def _suite_dict(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in (
        "id", "name", "version", "content_hash", "heldout", "prompt_template",
        "role_format", "language", "variant_of", "item_count", "description",
        "created_by", "created_at")}


@suite_app.command("list")
def suite_list(db: DbOption = None) -> None:
    """List registered suites."""
    from hilt.evals.registry import list_suites
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        _echo_json([_suite_dict(r) for r in list_suites(session)])


@suite_app.command("show")
def suite_show(suite: Annotated[str, typer.Argument(help="NAME@VERSION")],
               items: Annotated[int, typer.Option(help="items to print")] = 5,
               db: DbOption = None) -> None:
    """Show one suite: metadata, slice counts and its first items."""
    from hilt.evals.registry import get_suite, suite_items
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        row = get_suite(session, suite)
        all_items = suite_items(session, suite)
        slices: dict[str, dict[str, int]] = {}
        for item in all_items:
            counts = slices.setdefault(item.slice, {"comply": 0, "refuse": 0})
            counts[item.expect] += 1
        _echo_json({**_suite_dict(row), "slices": slices,
                    "items": [{"id": i.id, "prompt": i.prompt, "slice": i.slice,
                               "expect": i.expect} for i in all_items[:items]]})


@suite_app.command("variants")
def suite_variants(suite: Annotated[str, typer.Argument(help="NAME@VERSION")],
                   db: DbOption = None) -> None:
    """List a suite's template/role-format/language variants (base first)."""
    from hilt.evals.registry import variants
    from hilt.store.db import transaction

    with transaction(_engine(db)) as session:
        _echo_json([_suite_dict(r) for r in variants(session, suite)])


def register(app: typer.Typer) -> None:
    """Add ``hilt check`` and the ``hilt suite`` group."""
    app.command("check")(check)
    app.add_typer(suite_app, name="suite")
