"""An app over a fresh database with one token per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from hilt.access import ROLES, add_reviewer, create_token
from hilt.api.app import create_app
from hilt.store.db import transaction


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
