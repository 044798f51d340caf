"""The lead's pages: the dashboard, gate decisions, and the rubric editor."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from hilt.access import SIGNER_ROLES, Principal
from hilt.api.deps import DB, allow
from hilt.api.routers.gate import NOTE_MAX, sign_as_caller
from hilt.errors import Conflict, Forbidden, InputError
from hilt.gate.store import (
    SignerRefused,
    check_signer,
    counted_role,
    get_decision,
    latest,
    signoff_adds_nothing,
)
from hilt.review import rubrics
from hilt.review.rubric_spec import RubricSpec, parse_rubric
from hilt.review.text_checks import refuse_nul
from hilt.review.yamlio import parse_yaml_text
from hilt.store.db import transaction
from hilt.store.tables.base import utcnow
from hilt.web.common import engine_of, form_data
from hilt.web.dashboard import lead_dashboard
from hilt.web.forms import FormData, field_views, rewrite_question
from hilt.web.render import PREFIX, redirect, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)
LEADS = ("lead",)
NEW_RUBRIC = """id: my-rubric
title: What reviewers judge
changelog: first version
guidelines: |
  What a reviewer should look for, in plain words.
questions:
  - id: verdict
    kind: single_choice
    prompt: Is the response acceptable?
    options: [acceptable, unacceptable]
"""


ACK_NOTE_MAX = 4000
# what a model's headline accuracy rests on (hilt.train.registry.accuracy_basis), in words
BASIS_TEXT = {"held_out": "held out",
              "held_out_overlapping_training": "held out, overlapping training: optimistic",
              "out_of_fold": "out of fold on its training data",
              "out_of_fold_optimistic": "out of fold after fine-tuning on it: optimistic"}


@router.get("/lead", response_class=HTMLResponse)
def dashboard(request: Request, session: Session = DB,
              _: Principal = Depends(allow(*LEADS))) -> HTMLResponse:
    return render(request, "lead.html", title="Lead dashboard",
                  data=lead_dashboard(session, utcnow()), now=utcnow(),
                  ack_note_max=ACK_NOTE_MAX, basis_text=BASIS_TEXT)


@router.post("/lead/drift/{alert_id}/ack")
def acknowledge_alert(alert_id: str, request: Request, form: FormData = Depends(form_data),
                      who: Principal = Depends(allow(*LEADS))) -> Response:
    """Acknowledge a drift alert as ``hilt drift ack`` and ``POST
    /v1/drift/alerts/{id}/ack`` do (the same stage function, audited the same way)."""
    from hilt.quality.drift.runner import acknowledge

    note = (form.get("note") or "").strip()
    if len(note) > ACK_NOTE_MAX:
        raise InputError(f"the note is {len(note)} characters; at most {ACK_NOTE_MAX}",
                         field="note")
    refuse_nul(note, "note")
    with transaction(engine_of(request)) as session:
        acknowledge(session, alert_id, actor=who.actor, note=note)
    return redirect("/lead", "acknowledged")


def _signable(session: Session, record: dict[str, Any], who: Principal) -> list[str]:
    """The required sign-offs still missing that the caller may give: roles their
    identity holds a grant for and has not signed under yet, where their sign-off would
    count (:func:`signoff_adds_nothing`: someone who already counts toward a role fills
    another only when others can take theirs); empty for anyone who may not sign."""
    if who.role not in SIGNER_ROLES or who.reviewer_id is None:
        return []
    try:
        signer = check_signer(session, who.reviewer_id, via="api")
    except SignerRefused:
        return []
    grants = set(signer.signoff_roles or [])
    signoffs = record["decision"].get("signoffs")
    signoffs = signoffs if isinstance(signoffs, dict) else {}
    signed = {s.get("role") for s in signoffs.get("present") or []
              if isinstance(s, dict) and s.get("by") == who.reviewer_id}
    return [str(m["role"]) for m in signoffs.get("missing") or []
            if isinstance(m, dict) and m.get("role") in grants and m["role"] not in signed
            and signoff_adds_nothing(record, str(m["role"]), who.reviewer_id) is None]


def _gate_page(request: Request, session: Session, ref: str, who: Principal, *,
               error: str | None = None, status_code: int = 200) -> HTMLResponse:
    row = get_decision(session, ref)
    record = row.record
    newest = latest(session, row.hash).hash
    # only the newest record is signed (a sign-off on an older one would land there)
    signable = _signable(session, record, who) if newest == row.hash else []
    # which required role the signed-in person's sign-off fills, so the page can say so
    # instead of offering a sign-off that would count for nothing
    yours = (counted_role(record, who.reviewer_id)
             if newest == row.hash and who.reviewer_id is not None else None)
    return render(request, "gate.html", status_code, title="Gate decision", row=row,
                  record=record, decision=record["decision"], metrics=record["metrics"],
                  versions=record["inputs"]["versions"], newest=newest, signable=signable,
                  yours=yours, note_max=NOTE_MAX, error=error)


@router.get("/lead/gate/{decision}", response_class=HTMLResponse)
def gate_decision(decision: str, request: Request, session: Session = DB,
                  who: Principal = Depends(allow(*LEADS, "adjudicator"))) -> HTMLResponse:
    return _gate_page(request, session, decision, who)


@router.post("/lead/gate/{decision}/signoff")
def gate_signoff(decision: str, request: Request, form: FormData = Depends(form_data),
                 who: Principal = Depends(allow(*LEADS))) -> Response:
    """Sign the decision off as the signed-in identity; back to the new record's page,
    or this page again with the reason it was refused."""
    role, note = form.get("role") or "", (form.get("note") or "").strip()
    try:
        if len(note) > NOTE_MAX:
            raise InputError(f"the note is {len(note)} characters; at most {NOTE_MAX}",
                             field="note")
        signed = sign_as_caller(request, decision, who, role=role, note=note)
    except (InputError, Forbidden, Conflict) as exc:
        code = 403 if isinstance(exc, Forbidden) else 409 if isinstance(exc, Conflict) \
            else 422
        with transaction(engine_of(request)) as session:
            return _gate_page(request, session, decision, who, error=str(exc),
                              status_code=code)
    return redirect(f"/lead/gate/{signed['decision']}", "signed_off")


class _EditorDumper(yaml.SafeDumper):
    """Multi-line text as ``|`` blocks, so guidelines read as written."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_EditorDumper.add_representer(str, _str_presenter)


def _spec_yaml(spec: dict[str, Any]) -> str:
    """A published spec as editable YAML: defaults left out, options as bare strings
    where they have no description, and an empty changelog for the next version."""
    data = RubricSpec.model_validate(spec).model_dump(mode="json", exclude_defaults=True)
    for q in data["questions"]:
        if q.get("options") and all(set(o) == {"value"} for o in q["options"]):
            q["options"] = [o["value"] for o in q["options"]]
    data.pop("changelog", None)
    ordered = {"id": data.pop("id"), "title": data.pop("title"), "changelog": "", **data}
    return yaml.dump(ordered, Dumper=_EditorDumper, sort_keys=False, allow_unicode=True,
                     width=88)


def _editor(request: Request, session: Session, *, text: str, rubric_id: str | None,
            error: str | None = None, preview: RubricSpec | None = None,
            status_code: int = 200) -> HTMLResponse:
    diff = latest = None
    if preview is not None:
        row = rubrics.latest_version(session, preview.id)
        if row is not None:
            latest = f"{row.rubric_id}@{row.version}"
            diff = rubrics.diff_specs(rubrics.spec_of(row), preview)
    fields = field_views(preview, 2) if preview else []
    return render(request, "rubric_editor.html", status_code, title="Rubric editor",
                  published=rubrics.list_rubrics(session), text=text, rubric_id=rubric_id,
                  error=error, preview=preview, fields=fields, diff=diff, latest=latest,
                  rewrite_q=rewrite_question(preview) if preview else None)


@router.get("/lead/rubrics", response_class=HTMLResponse)
def rubric_editor(request: Request, session: Session = DB,
                  _: Principal = Depends(allow(*LEADS))) -> HTMLResponse:
    rubric_id = request.query_params.get("id")
    text = NEW_RUBRIC
    if rubric_id:
        text = _spec_yaml(rubrics.get_version(session, rubric_id).spec)
    return _editor(request, session, text=text, rubric_id=rubric_id)


def _parse(text: str) -> RubricSpec:
    # The loader `hilt rubric publish` uses: repeated keys refused, and every error names
    # the line of the field at fault.
    data, line_of = parse_yaml_text(text, file="editor")
    return parse_rubric(data, file="editor", line_of=line_of)


@router.post("/lead/rubrics/preview", response_class=HTMLResponse)
def rubric_preview(request: Request, form: FormData = Depends(form_data),
                   session: Session = DB,
                   _: Principal = Depends(allow(*LEADS))) -> HTMLResponse:
    text = form.get("spec") or ""
    try:
        spec = _parse(text)
    except InputError as exc:
        return _editor(request, session, text=text, rubric_id=None, error=str(exc),
                       status_code=422)
    return _editor(request, session, text=text, rubric_id=spec.id, preview=spec)


@router.post("/lead/rubrics/publish")
def rubric_publish(request: Request, form: FormData = Depends(form_data),
                   who: Principal = Depends(allow(*LEADS))) -> Response:
    text = form.get("spec") or ""
    engine = engine_of(request)
    try:
        spec = _parse(text)
        with transaction(engine) as session:
            row = rubrics.publish_rubric(session, spec, actor=who.actor)
            rubric_id = row.rubric_id
    except (InputError, Conflict) as exc:
        with transaction(engine) as session:
            return _editor(request, session, text=text, rubric_id=None, error=str(exc),
                           status_code=422)
    response = redirect(f"/lead/rubrics?id={rubric_id}")
    response.headers["location"] += "&msg=published"
    return response
