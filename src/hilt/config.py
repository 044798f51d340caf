"""Where hilt keeps its state. One environment variable decides the database."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = Path(".hilt")


def hilt_home() -> Path:
    return Path(os.environ.get("HILT_HOME", str(DEFAULT_HOME)))


def database_url() -> str:
    """``HILT_DATABASE_URL`` wins; otherwise a SQLite file under ``./.hilt``."""
    url = os.environ.get("HILT_DATABASE_URL")
    if url:
        return url
    home = hilt_home()
    return f"sqlite:///{home / 'hilt.db'}"
