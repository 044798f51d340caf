"""A writer killed in the middle of a batch leaves nothing partial behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hilt.store import audit
from hilt.store.db import transaction
from hilt.store.tables.core import AuditRow, EventRow

WRITER = textwrap.dedent("""
    import sys, time, pathlib
    from hilt.events import ingest
    from hilt.store.db import make_engine
    url, flag = sys.argv[1], pathlib.Path(sys.argv[2])
    real_after = ingest._after_ingest
    def slow_after(session, events, new_ids, actor):
        flag.write_text(str(len(new_ids)))  # rows are written, not yet committed
        time.sleep(60)                      # killed here
        return real_after(session, events, new_ids, actor)
    ingest._after_ingest = slow_after
    events = [{"interaction": {"prompt": f"p{i}"}, "responses": [{"text": "r"}]}
              for i in range(500)]
    ingest.ingest_events(make_engine(url), events)
""")


def test_killed_writer_leaves_no_partial_batch(db_url: str, engine: Engine,
                                               tmp_path: Path) -> None:
    flag = tmp_path / "inserted"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(flag)],
                            env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never reached the insert"
            time.sleep(0.05)
        assert flag.read_text() == "500"
        if engine.dialect.name == "postgresql":
            # While the writer is mid-transaction, other readers see none of it.
            with engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(EventRow)
                                    ).scalar_one() == 0
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    engine.dispose()
    with transaction(engine) as s:
        assert s.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar_one() == 0
        assert s.execute(sa.select(sa.func.count()).select_from(AuditRow)).scalar_one() == 0
        assert audit.verify(s).ok
