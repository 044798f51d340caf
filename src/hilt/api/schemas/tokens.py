"""Response bodies of the tokens router: API tokens as ``hilt token list`` shows them
(never the secret or its hash), the one reply that shows a new token's secret, and
what a revocation or a new expiry did."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from hilt.api.schemas import Schema

Expiry = datetime | Literal["never"]


class TokenInfo(Schema):
    id: str
    role: str = Field(description="admin, lead, adjudicator, reviewer or service")
    name: str = Field(description="a label for people (the role when none was given)")
    reviewer_id: str | None = Field(description="the reviewer identity the token belongs "
                                                "to, if any")
    status: Literal["active", "expired", "revoked"] = Field(
        description="a revoked token that also expired is revoked")
    created_at: datetime
    expires_at: Expiry = Field(description="when it stops authenticating, or never")
    last_used_at: datetime | None = Field(
        description="when it last authenticated (written at most about once a minute, so "
                    "it may lag by that much); null if not used yet")
    revoked: bool
    revoked_at: datetime | None


class TokenCreated(TokenInfo):
    token: str = Field(description="the secret, shown only here: hilt keeps only its "
                                   "sha256")


class TokenRevoked(TokenInfo):
    changed: bool = Field(description="false when the token was already revoked (its "
                                      "revocation time is kept)")
    own_token: bool = Field(description="whether it is the token this request was made "
                                        "with, which authenticates nothing from now on")
    message: str = Field(description="what was done, as `hilt token revoke` says it")


class TokenExpiry(TokenInfo):
    previous_expires_at: Expiry = Field(description="the expiry it had before")
    was_expired: bool = Field(description="whether it had already expired (it works "
                                          "again now)")
    message: str = Field(description="what was done, as `hilt token expire` says it")
