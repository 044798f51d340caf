"""PostgreSQL advisory locks scoped to the schema hilt runs in.

Advisory locks belong to the whole database, not to a schema. Two hilt installations in
separate schemas of one database (``options=-csearch_path=...``) would otherwise wait on
each other's audit sealing, builds and migrations, and skip each other's periodic tasks.
Every lock hilt takes is therefore a two-key lock: the first key names the purpose (a
constant per lock kind), the second hashes the current schema together with the locked
name. A hash collision between two names only makes one of them wait (or, for a
try-lock, skip one period); it never lets two holders in at once for the same name.
"""

from __future__ import annotations

# The second key: ``hashtext`` gives a signed 32-bit int, as the two-key form wants.
# (No schema on the search path gives NULL, and a lock on NULL is silently not taken.)
SCHEMA_KEY = "hashtext(coalesce(current_schema(), '') || ':' || :lock_name)"


def lock_params(space: int, name: str = "") -> dict[str, object]:
    """Bind values for ``(:lock_space, SCHEMA_KEY)``."""
    return {"lock_space": space, "lock_name": name}
