"""Registering trained models as versions (table ``model_versions``), with audit entries.

The version id is ``<kind>-<first 16 hex of the manifest hash and time>``; the
previous version is the newest earlier one with the same kind and name, so a
refreshed reward model can be compared with the one it replaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from hilt.canonical import sha256_hex
from hilt.errors import InputError, NotFound
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.registry import ModelVersionRow
from hilt.train.manifest import (
    MANIFEST_FILE,
    artifact_hashes,
    json_safe,
    manifest_hash,
    read_manifest,
)

KINDS = ("reward", "sft", "classifier")


def latest_version(session: Session, kind: str, name: str) -> ModelVersionRow | None:
    return session.execute(
        sa.select(ModelVersionRow).where(ModelVersionRow.kind == kind,
                                         ModelVersionRow.name == name)
        .order_by(ModelVersionRow.created_at.desc(), ModelVersionRow.id.desc()).limit(1)
    ).scalar_one_or_none()


def register_model_version(session: Session, *, manifest: dict[str, Any], artifact_path: str,
                           name: str | None = None, actor: str = "cli") -> ModelVersionRow:
    """Insert a model version and its audit entry in the caller's transaction."""
    kind = manifest["kind"]
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}")
    name = name or kind
    created = utcnow()
    recipe = manifest_hash(manifest)
    version_id = f"{kind}-{sha256_hex(recipe + created.isoformat())[:16]}"
    previous = latest_version(session, kind, name)
    row = ModelVersionRow(
        id=version_id, kind=kind, name=name, base_model=str(manifest["base_model"]),
        dataset_hash=manifest["data"]["hash"], config=json_safe(manifest["config"]),
        seed=int(manifest["seed"]), code_version=manifest["code_version"],
        # JSON columns take no NaN (PostgreSQL refuses it): undefined metrics are null
        metrics=json_safe(manifest.get("metrics", {})),
        artifact_path=str(Path(artifact_path).resolve()),
        manifest_hash=recipe, previous_id=previous.id if previous else None,
        created_by=actor, created_at=created)
    session.add(row)
    session.flush()
    audit.append(session, actor=actor, action="model_version.register",
                 entity_type="model_version", entity_id=version_id,
                 payload={"kind": kind, "name": name, "dataset_hash": row.dataset_hash,
                          "manifest_hash": recipe, "previous_id": row.previous_id,
                          "artifact_path": row.artifact_path,
                          "code_version": row.code_version})
    return row


def list_versions(session: Session, kind: str | None = None,
                  name: str | None = None, limit: int | None = None
                  ) -> list[ModelVersionRow]:
    """Model versions, newest first, of ``kind`` and ``name`` when given; the first
    ``limit`` of them (the database stops there) or all."""
    query = sa.select(ModelVersionRow).order_by(ModelVersionRow.created_at.desc(),
                                                ModelVersionRow.id.desc())
    if kind:
        query = query.where(ModelVersionRow.kind == kind)
    if name:
        query = query.where(ModelVersionRow.name == name)
    if limit is not None:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def get_version(session: Session, version_id: str) -> ModelVersionRow:
    row = session.get(ModelVersionRow, version_id)
    if row is None:
        raise NotFound(f"model version {version_id!r} not found")
    return row


# hex characters after "<kind>-" that a prefix must hold, as a dataset version's prefix
# must hold 8 of its id: a shorter one would match by accident as the registry grows
MIN_PREFIX = 8


def find_version(session: Session, version_id: str, field: str | None = None
                 ) -> ModelVersionRow:
    """A version by its id or a unique prefix of it: the kind, ``-`` and at least
    :data:`MIN_PREFIX` characters (``reward-1a2b3c4d``). A prefix that matches several
    versions is an :class:`InputError` naming ``field`` and the candidates; one that is
    too short and no id, or matches none, is :class:`NotFound`."""
    row = session.get(ModelVersionRow, version_id)
    if row is not None:
        return row
    kind, _, rest = version_id.partition("-")
    if kind not in KINDS or len(rest) < MIN_PREFIX:
        raise NotFound(f"model version {version_id!r} not found (a prefix is the kind, "
                       f"'-' and at least {MIN_PREFIX} characters: reward-1a2b3c4d)")
    found = list(session.execute(sa.select(ModelVersionRow.id).where(
        ModelVersionRow.id.startswith(version_id, autoescape=True))
        .order_by(ModelVersionRow.id).limit(11)).scalars())
    if len(found) > 1:
        shown = ", ".join(found[:10]) + (", …" if len(found) > 10 else "")
        raise InputError(f"model version prefix {version_id!r} is ambiguous: it matches "
                         f"{shown}", field=field)
    if not found:
        raise NotFound(f"model version {version_id!r} not found")
    return get_version(session, found[0])


def version_as_dict(row: ModelVersionRow, full: bool = False) -> dict[str, Any]:
    """A registered version as plain data: its columns, the headline accuracy with its
    interval and n (or, ``full``, config, all metrics and the manifest hash), and what
    that accuracy rests on (:func:`accuracy_basis`)."""
    data: dict[str, Any] = {
        "id": row.id, "kind": row.kind, "name": row.name, "base_model": row.base_model,
        "dataset_hash": row.dataset_hash, "seed": row.seed, "code_version": row.code_version,
        "previous_id": row.previous_id, "artifact_path": row.artifact_path,
        "created_at": row.created_at.isoformat(), "created_by": row.created_by,
    }
    if full:
        data.update({"config": row.config, "metrics": row.metrics,
                     "manifest_hash": row.manifest_hash})
    else:
        data.update(headline_accuracy(row.metrics))
    data["accuracy_basis"] = accuracy_basis(row)
    return data


def headline_accuracy(metrics: Any) -> dict[str, Any]:
    """The headline accuracy of stored metrics with its 95 % Wilson interval and n:
    ``accuracy``, ``accuracy_ci_low``, ``accuracy_ci_high``, ``accuracy_n`` (held-out
    pairs for a reward model, distinct rows for a classifier), all None where the
    metrics hold none (an SFT model). Reads both stored forms: a classifier's rate
    object (``value``, ``n``, ``ci_low``, ``ci_high``) and a reward model's
    ``accuracy`` with ``accuracy_ci`` and ``n``."""
    out: dict[str, Any] = {"accuracy": None, "accuracy_ci_low": None,
                           "accuracy_ci_high": None, "accuracy_n": None}
    if not isinstance(metrics, dict):
        return out
    headline = metrics.get("accuracy")
    if isinstance(headline, dict):
        out.update({"accuracy": headline.get("value"),
                    "accuracy_ci_low": headline.get("ci_low"),
                    "accuracy_ci_high": headline.get("ci_high"),
                    "accuracy_n": headline.get("n")})
    elif headline is not None:
        ci = metrics.get("accuracy_ci")
        ci = ci if isinstance(ci, dict) else {}
        out.update({"accuracy": headline, "accuracy_ci_low": ci.get("low"),
                    "accuracy_ci_high": ci.get("high"),
                    "accuracy_n": ci.get("n", metrics.get("n"))})
    return out


def accuracy_basis(row: ModelVersionRow) -> str | None:
    """What a version's headline accuracy rests on: ``held_out`` (pairs or rows the
    model did not train on), ``held_out_overlapping_training`` (some of them it trained
    on: optimistic), ``out_of_fold`` (a classifier's out-of-fold predictions on its own
    training data) or ``out_of_fold_optimistic`` (the same after its encoder was
    fine-tuned on all of that data); None without an accuracy (SFT). Read from the
    metrics, or for a version registered before they recorded it, told from them."""
    metrics = row.metrics if isinstance(row.metrics, dict) else {}
    if metrics.get("accuracy_basis"):
        return str(metrics["accuracy_basis"])
    if row.kind == "reward" and metrics.get("accuracy") is not None:
        return "held_out_overlapping_training" if metrics.get("held_out_in_train") \
            else "held_out"
    if row.kind == "classifier" and metrics.get("accuracy") is not None:
        if metrics.get("held_out"):
            return "held_out"
        config = row.config if isinstance(row.config, dict) else {}
        return "out_of_fold_optimistic" if (config.get("finetune_epochs") or 0) > 0 \
            else "out_of_fold"
    return None


def list_models(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """Newest model versions as plain dicts (what the lead dashboard shows), each with
    its headline accuracy, interval and n (:func:`headline_accuracy`) and what that
    accuracy rests on (:func:`accuracy_basis`)."""
    return [version_as_dict(r) for r in list_versions(session, limit=limit)]


def _row_fields(row: ModelVersionRow, manifest: dict[str, Any]) -> list[str]:
    """The registered columns that are copies of the manifest's fields and differ."""
    found = manifest.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    pairs = {"kind": (row.kind, manifest.get("kind")),
             "base_model": (row.base_model, str(manifest.get("base_model"))),
             "dataset_hash": (row.dataset_hash, data.get("hash")),
             "seed": (row.seed, manifest.get("seed")),
             "code_version": (row.code_version, manifest.get("code_version")),
             "config": (row.config, json_safe(manifest.get("config"))),
             "metrics": (row.metrics, json_safe(manifest.get("metrics", {})))}
    return [name for name, (registered, found) in pairs.items() if registered != found]


def _file_differences(folder: Path, recorded: dict[str, str]) -> list[dict[str, str]]:
    found = artifact_hashes(folder)
    out = []
    for name, digest in sorted(recorded.items()):
        if name not in found:
            out.append({"file": name, "problem": "missing"})
        elif found[name] != digest:
            out.append({"file": name, "problem": f"changed: sha256 {found[name]}, the "
                                                 f"manifest records {digest}"})
    out += [{"file": name, "problem": "not in the manifest (added since)"}
            for name in sorted(set(found) - set(recorded))]
    return out


def verify_version(row: ModelVersionRow) -> dict[str, Any]:
    """Check a version's model folder against its registry row: the manifest's hash
    (:func:`hilt.train.manifest.manifest_hash`) against ``manifest_hash``, the columns
    copied from the manifest against it, and every file against the sha256 the
    manifest records (``files``; a manifest written before they were recorded gives
    ``files: "unknown"``). ``agrees`` is true when nothing differs; ``differences``
    name each file that does."""
    folder = Path(row.artifact_path)
    report: dict[str, Any] = {"id": row.id, "artifact_path": row.artifact_path,
                              "manifest_hash": row.manifest_hash, "files": None,
                              "files_checked": None, "differences": []}
    differences: list[dict[str, str]] = report["differences"]
    try:
        manifest = read_manifest(folder)
    except FileNotFoundError:
        where = MANIFEST_FILE if folder.is_dir() else str(folder)
        differences.append({"file": where, "problem": "missing"})
    except (OSError, ValueError) as exc:
        differences.append({"file": MANIFEST_FILE, "problem": f"unreadable ({exc})"})
    else:
        found = manifest_hash(manifest)
        if found != row.manifest_hash:
            differences.append({"file": MANIFEST_FILE, "problem": (
                f"its hash {found} is not the registered {row.manifest_hash}")})
        differences += [{"file": MANIFEST_FILE, "problem": f"its {name} differs from the "
                         "registered version's"} for name in _row_fields(row, manifest)]
        recorded = manifest.get("files")
        if isinstance(recorded, dict):
            differences += _file_differences(folder, recorded)
            report["files"], report["files_checked"] = "checked", len(recorded)
        else:
            report["files"] = "unknown"  # written before the files' hashes were recorded
    report["agrees"] = not differences
    return report
