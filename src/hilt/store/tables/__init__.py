"""All tables, imported so that ``Base.metadata`` is complete for migrations.

One module per stage; each stage's Alembic revision creates exactly its module's tables.
"""

from hilt.store.tables import (  # noqa: F401
    core,
    datasets,
    drift,
    gate,
    ops,
    quality,
    registry,
    review,
)
from hilt.store.tables.base import Base

__all__ = ["Base"]
