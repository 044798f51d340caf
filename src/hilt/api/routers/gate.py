"""Release-gate sign-offs over HTTP. The signer is the caller: the reviewer identity the
token (or page session) belongs to, never a name in the body."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from hilt.access import Principal
from hilt.api.bodies import RequestBody
from hilt.api.deps import allow, get_engine
from hilt.api.errors import Error
from hilt.errors import Forbidden
from hilt.review.text_checks import NAME_MAX

router = APIRouter(prefix="/v1/gate", tags=["gate"])
NOTE_MAX = 4000


class SignoffIn(RequestBody):
    role: str = Field(min_length=1, max_length=NAME_MAX,
                      description="a sign-off role the decision's policy requires and the "
                                  "caller's identity was granted, e.g. safety_lead")
    note: str = Field(default="", max_length=NOTE_MAX, description="why, kept in the record")


class SignoffOut(BaseModel):
    decision: str = Field(description="hash of the new record (it supersedes the newest "
                                      "record of the decision signed)")
    supersedes: str | None
    outcome: str = Field(description="pass or block, re-evaluated with the sign-off")
    reasons: list[str]
    signed_by: str
    role: str


SIGNOFF_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": Error, "description": "the token's role may not sign, it belongs to no "
                                         "reviewer identity, or that identity is not an "
                                         "active lead or admin granted the role"},
    404: {"model": Error, "description": "no such decision"},
    409: {"model": Error, "description": "an ambiguous decision prefix, the caller already "
                                         "signed the decision under this role (or under "
                                         "another, and this one would fill no missing "
                                         "sign-off: each person counts toward one "
                                         "required role), or other sign-offs of the "
                                         "decision kept winning the race to it"},
}


def signer_of(who: Principal) -> str:
    """The identity that signs: a token that belongs to no person cannot sign for one."""
    if who.reviewer_id is None:
        raise Forbidden("this token belongs to no reviewer identity; a sign-off is signed "
                        "by a person (hilt token create --role lead --reviewer ID)")
    return who.reviewer_id


def sign_as_caller(request: Request, ref: str, who: Principal, *, role: str, note: str
                   ) -> dict[str, Any]:
    """Sign ``ref`` off as the caller, retrying a transaction that lost a race; a signer
    that may not sign under ``role`` is a 403 with the reason."""
    from hilt.gate.store import SignerRefused, retried, sign_off

    signer = signer_of(who)

    def work(session: Session) -> dict[str, Any]:
        row = sign_off(session, ref, role=role, signed_by=signer, note=note, via="api")
        record = row.record
        return {"decision": record["hash"], "supersedes": record["supersedes"],
                "outcome": record["outcome"], "reasons": list(record["decision"]["reasons"]),
                "signed_by": signer, "role": role}

    try:
        return retried(get_engine(request), work)
    except SignerRefused as exc:
        raise Forbidden(exc.reason) from None


@router.post("/decisions/{ref}/signoffs", status_code=201, response_model=SignoffOut,
             responses=SIGNOFF_RESPONSES)
def sign_decision(ref: str, body: SignoffIn, request: Request,
                  who: Principal = Depends(allow("lead"))) -> dict[str, Any]:
    """Sign off the newest record of decision ``ref`` (hash or unique prefix of at least
    8 characters) as the caller's identity; returns the superseding record's hash and
    outcome. Same rules as ``hilt gate signoff``."""
    return sign_as_caller(request, ref, who, role=body.role, note=body.note)
