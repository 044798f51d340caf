"""All tables, imported so that ``Base.metadata`` is complete for migrations.

One module per stage; each stage's Alembic revision creates exactly its module's tables.
"""

from hilt.store.tables import core  # noqa: F401
from hilt.store.tables.base import Base

for _stage in ("review", "quality", "datasets", "registry", "gate", "drift", "ops"):
    try:
        __import__(f"hilt.store.tables.{_stage}")
    except ModuleNotFoundError as exc:  # a stage whose tables do not exist yet
        if exc.name != f"hilt.store.tables.{_stage}":
            raise

__all__ = ["Base"]
