"""JSON API v1: bearer tokens, typed requests and answers, problem+json errors, the OpenAPI
document and its reference page.

Each domain refusal becomes a problem in one handler here; an operation says which status,
problem kind and default field its rule refusals take (`@operation(refusal=...)`)."""

from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import IntegrityError

from referrals.courses.schedule import InvalidSchedule
from referrals.courses.services import CourseRuleBroken, RegisterRefused
from referrals.extensions import db
from referrals.intake.lifecycle import TransitionRefused
from referrals.openapi import OPENAPI_ATTRIBUTE, json_body
from referrals.outcomes.scoring import InvalidScores
from referrals.problems import ApiProblem, problem, validation_problem
from referrals.reports.periods import InvalidPeriod
from referrals.reports.services import ReturnRefused

bp = Blueprint("api", __name__)
# Course rules name some inputs as the page forms do; the API's body names them differently.
_BODY_FIELD = {"lead_artists": "lead_artist_ids", "participant_fee": "participant_fee_pence"}


def _has_surrogates(value: Any) -> bool:
    """Any text in a JSON document holding half a UTF-16 pair; iterative, for deep nesting."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


@bp.before_request
def _refuse_unpaired_surrogates() -> None:
    """JSON can carry half a UTF-16 pair ("\ud800"), which no text column can store."""
    if request.method not in ("POST", "PUT", "PATCH") or not request.is_json:
        return
    if _has_surrogates(json_body()):
        raise validation_problem({"body": ["Text must be valid Unicode"]})


@bp.errorhandler(ApiProblem)
def _answer_problem(error: ApiProblem) -> Response:
    return error.response()


@bp.errorhandler(CourseRuleBroken)
@bp.errorhandler(TransitionRefused)
def _rule_broken(error: CourseRuleBroken | TransitionRefused) -> Response:
    """A request a rule refuses, answered as its operation says (`refusal`); nothing it started
    is kept. A missing reason is the caller's to correct (422)."""
    db.session.rollback()
    if isinstance(error, RegisterRefused) and error.errors:
        return validation_problem(error.errors).response()
    view = current_app.view_functions.get(request.endpoint or "")
    status, kind, field = getattr(view, OPENAPI_ATTRIBUTE, {})["x-refusal"]
    if isinstance(error, CourseRuleBroken):
        named, status = error.field, 422 if error.field == "reason" else status
    else:
        named = "reason" if str(error) == "Give a reason" else None
    field = _BODY_FIELD.get(named or "", named) or field
    errors = {field: [str(error)]} if field else None
    return problem(status, detail=str(error), kind=kind, errors=errors)


@bp.errorhandler(IntegrityError)
def _clash(error: IntegrityError) -> Response:
    """A concurrent request changed the same records first; nothing of this one is kept."""
    db.session.rollback()
    detail = "These records changed while the request was handled. Send it again"
    return problem(409, detail=detail, kind="conflict")


@bp.errorhandler(InvalidSchedule)
@bp.errorhandler(InvalidScores)
@bp.errorhandler(InvalidPeriod)
@bp.errorhandler(ReturnRefused)
def _fields_refused(
    error: InvalidSchedule | InvalidScores | InvalidPeriod | ReturnRefused,
) -> Response:
    """A rule's refusal of named fields (a schedule's are under `schedule.`): a 422."""
    db.session.rollback()
    if isinstance(error, InvalidSchedule):
        errors = {f"schedule.{field}": messages for field, messages in error.errors.items()}
    elif isinstance(error, InvalidScores):
        errors = error.errors
    else:
        errors = {getattr(error, "field", None) or "period": [str(error)]}
    return validation_problem(errors).response()
