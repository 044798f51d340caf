"""Data selection commands: ``hilt dataset build|list|show|diff|export|revoke`` and
``hilt forget --subject S``. Thin: each parses arguments and calls ``hilt.data``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hilt.cli.core import DbOption, echo_json, engine_for, options_named

VersionArgument = Annotated[str, typer.Argument(
    help="version id or a prefix of at least 8 characters")]
dataset_app = typer.Typer(help="Dataset versions: build, inspect, diff, export, revoke.",
                          no_args_is_help=True)

ActorOption = Annotated[str, typer.Option("--actor", help="who is acting (audit log)")]
DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", help="where dataset files live (default: $HILT_HOME/datasets)")]


@dataset_app.command("build")
def build(spec: Annotated[Path, typer.Argument(help="selection spec (YAML)")],
          db: DbOption = None, data_dir: DataDirOption = None,
          actor: ActorOption = "cli") -> None:
    """Select from the store by SPEC and record an immutable dataset version.

    Versions are content-addressed: when the selected records equal an existing
    version's, that version is returned (created: false) under the name it was first
    built with, and a note on stderr says so; when that version is revoked the output
    says so (revoked, revoked_reason) and so does a note on stderr: it stays revoked.
    A selection without records exits 2.
    """
    from hilt.data.build import build_version
    from hilt.data.spec import check_rubric_references, load_spec
    from hilt.store.db import transaction

    selection = load_spec(spec)
    with transaction(engine_for(db)) as session:
        check_rubric_references(session, selection)
        result = build_version(session, selection, actor=actor, directory=data_dir,
                               spec_file=str(spec))
    other_name = result.name != selection.name
    if not result.created:
        typer.echo(f"note: the selected records equal dataset version {result.version_id} "
                   f"(name {result.name!r}); it is reused, no new version is recorded"
                   + (f"; 'dataset list --name {selection.name}' finds it"
                      if other_name else ""),
                   err=True)
    if result.revoked:
        typer.echo(f"note: dataset version {result.version_id} is revoked "
                   f"({result.revoked_reason}); exporting or training on it needs "
                   "--override-revoked", err=True)
    _note_stale(list(result.stale_removed), "builds")
    echo_json({"version_id": result.version_id, "created": result.created,
               "reused": not result.created, "name": result.name,
               **({"revoked": True, "revoked_reason": result.revoked_reason}
                  if result.revoked else {}),
               **({"requested_name": selection.name} if other_name else {}),
               "kind": selection.kind,
               "records": result.record_count,
               "steps": [{k: s[k] for k in ("step", "input", "removed", "output", "reasons",
                                            "labels")
                          if k in s} for s in result.steps]})


@dataset_app.command("list")
def list_(name: Annotated[str | None, typer.Option(help="only this name")] = None,
          db: DbOption = None) -> None:
    """List dataset versions, newest first."""
    from hilt.data.versions import list_versions, summary
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json([summary(r) for r in list_versions(session, name)])


@dataset_app.command("show")
def show(version: VersionArgument,
         db: DbOption = None,
         lineage: Annotated[bool, typer.Option(help="include the full lineage")] = False
         ) -> None:
    """Print a version's manifest (spec, steps, lineage, code version, builder)."""
    from hilt.data import versions
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        row = versions.get_version(session, version)
        out = {**versions.summary(row), "manifest": row.manifest}
        if lineage:
            out["lineage"] = versions.lineage(session, row.id)
        echo_json(out)


@dataset_app.command("diff")
def diff(a: Annotated[str, typer.Argument(help="older version")],
         b: Annotated[str, typer.Argument(help="newer version")], db: DbOption = None) -> None:
    """Records added, removed and relabelled from A to B."""
    from hilt.data.versions import diff as diff_versions
    from hilt.store.db import transaction

    with transaction(engine_for(db)) as session:
        echo_json(diff_versions(session, a, b))


@dataset_app.command("export")
def export(version: VersionArgument,
           out: Annotated[Path, typer.Option("--out", help="output folder (must not exist)")],
           fmt: Annotated[str, typer.Option("--format", help="jsonl | parquet | hf")] = "jsonl",
           shape: Annotated[str | None, typer.Option(
               help="TRL shape: prompt_chosen_rejected | conversational (preference), "
                    "prompt_completion | messages (sft), text_label (classification)")] = None,
           override_revoked: Annotated[str | None, typer.Option(
               "--override-revoked", help="export a revoked version anyway; the reason "
                                          "is written to the audit log")] = None,
           db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Export a version in a shape TRL reads."""
    from hilt.data.export import export_version
    from hilt.store.db import transaction

    with options_named({"format": "--format", "shape": "--shape", "out": "--out"}), \
            transaction(engine_for(db)) as session:
        result = export_version(session, version, out, fmt=fmt, shape=shape, actor=actor,
                                override_reason=override_revoked)
    # Printed after the commit, which moves the folder into place.
    _note_stale(result.get("stale_removed", []), "exports")
    echo_json(result)
    if not result["placed"]:
        typer.echo(f"error: {result['error']}", err=True)
        raise typer.Exit(1)


@dataset_app.command("revoke")
def revoke(version: VersionArgument,
           reason: Annotated[str, typer.Option(help="why (recorded)")],
           db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Mark a version revoked: no export or training without an audited override."""
    from hilt.data.versions import get_version, markers, summary
    from hilt.data.versions import revoke as revoke_version
    from hilt.store.db import transaction

    with options_named({"reason": "--reason"}), transaction(engine_for(db)) as session:
        already = get_version(session, version).revoked_at is not None
        out = summary(revoke_version(session, version, reason=reason, actor=actor))
        written = markers(session)  # filled in by the commit
    if already:
        # the first revocation stands; a new reason would otherwise vanish unremarked
        typer.echo(f"note: dataset version {out['id']} was already revoked "
                   f"({out['revoked_reason']}); nothing changed in the store"
                   + ("" if reason == out["revoked_reason"]
                      else f" and the reason given now ({reason!r}) is not recorded"),
                   err=True)
    echo_json({**out, **written.as_dict()})
    if written.failed:
        typer.echo(f"error: the revocation is recorded, but {len(written.failed)} "
                   "REVOKED.json marker(s) could not be written (markers_failed); fix "
                   "the cause and run the same revoke again to write them", err=True)
        raise typer.Exit(1)


def forget(subject: Annotated[str, typer.Option("--subject", help="pseudonymous subject id")],
           reason: Annotated[str, typer.Option(help="recorded reason")] = "right to be forgotten",
           db: DbOption = None, actor: ActorOption = "cli") -> None:
    """Erase a subject's content, revoke every dataset version holding it, flag exports."""
    from hilt.data.forget import forget as forget_subject

    with options_named({"subject": "--subject", "reason": "--reason"}):
        result = forget_subject(engine_for(db), subject, actor=actor, reason=reason)
    out = result.as_dict()
    echo_json(out)
    if not result.events_found:
        typer.echo(f"note: no stored event has the subject id {subject!r}, so nothing "
                   "was erased (the request is in the audit log); check the id", err=True)
    if not result.ok:
        typer.echo(f"error: the erasure is recorded, but {len(out['files_failed'])} "
                   f"file(s) could not be deleted and {len(out['markers_failed'])} "
                   "marker(s) not written (files_failed, markers_failed); fix the cause "
                   "and run the same forget again to finish", err=True)
        raise typer.Exit(1)


def _note_stale(removed: list[str], what: str) -> None:
    if removed:
        typer.echo(f"note: removed {len(removed)} staging folder(s) left by interrupted "
                   f"{what}: {', '.join(removed)}", err=True)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""
    app.add_typer(dataset_app, name="dataset")
    app.command("forget")(forget)
