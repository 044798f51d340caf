"""An app over a fresh database with one token per role. Every JSON reply a test receives
is checked against the model its route declares (:mod:`.conformance`, applied to every
test by ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hilt.access import ROLES, add_reviewer, create_token
from hilt.api.app import create_app
from hilt.store.db import transaction
from hilt.store.tables.core import ReviewerRow


@dataclass
class Api:
    client: TestClient
    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def api(engine: Engine) -> Iterator[Api]:
    tokens = {}
    with transaction(engine) as s:
        for role in ROLES:
            reviewer = None
            if role in {"reviewer", "adjudicator", "lead"}:
                reviewer = f"{role}-1"
                add_reviewer(s, reviewer_id=reviewer, role=role)
            tokens[role] = create_token(s, role=role, reviewer_id=reviewer)[1]
    with TestClient(create_app(engine)) as client:
        yield Api(client, tokens)


def calibrated(s: Session, people: Iterable[tuple[str, str]], *,
               pools: list[str] | None = None, tokens: bool = True) -> dict[str, str]:
    """Calibrated reviewers, each ``(reviewer id, role)``, past onboarding so that the
    queue gives them tasks; with ``tokens``, each one's API token (id -> secret)."""
    secrets = {}
    for rid, role in people:
        add_reviewer(s, reviewer_id=rid, role=role, pools=pools)
        s.flush()
        s.get_one(ReviewerRow, rid).status = "calibrated"
        if tokens:
            secrets[rid] = create_token(s, role=role, reviewer_id=rid)[1]
    return secrets
