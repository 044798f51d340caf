"""The base of every request body model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestBody(BaseModel):
    """A JSON request body. A field it does not declare is refused (422 naming it), not
    dropped: a misspelt ``time_spent`` for ``time_spent_s``, or ``dryrun`` for
    ``dry_run``, would otherwise be lost and the request carried out without it."""

    model_config = ConfigDict(extra="forbid")
