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
from hilt.errors import NotFound
from hilt.store import audit
from hilt.store.tables.base import utcnow
from hilt.store.tables.registry import ModelVersionRow
from hilt.train.manifest import json_safe, manifest_hash

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
                  name: str | None = None) -> list[ModelVersionRow]:
    query = sa.select(ModelVersionRow).order_by(ModelVersionRow.created_at.desc(),
                                                ModelVersionRow.id.desc())
    if kind:
        query = query.where(ModelVersionRow.kind == kind)
    if name:
        query = query.where(ModelVersionRow.name == name)
    return list(session.execute(query).scalars())


def get_version(session: Session, version_id: str) -> ModelVersionRow:
    row = session.get(ModelVersionRow, version_id)
    if row is None:
        raise NotFound(f"model version {version_id!r} not found")
    return row


def version_as_dict(row: ModelVersionRow, full: bool = False) -> dict[str, Any]:
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


def list_models(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """Newest model versions as plain dicts (what the lead dashboard shows), each with
    its headline accuracy, interval and n (:func:`headline_accuracy`)."""
    return [version_as_dict(r) for r in list_versions(session)[:limit]]
