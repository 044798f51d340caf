from sqlalchemy.engine import Engine

from hilt.store import audit
from hilt.store.db import transaction


def test_audit_chain_roundtrip(engine: Engine) -> None:
    with transaction(engine) as s:
        audit.append(s, actor="t", action="x", entity_type="e", entity_id="1", payload={"a": 1})
        audit.append(s, actor="t", action="y", entity_type="e", entity_id="2")
    with transaction(engine) as s:
        res = audit.verify(s)
    assert res.ok and res.entries == 2
