"""JSON API v1: bearer tokens, problem+json errors, pagination, and the OpenAPI document."""

from typing import Any

from flask import Blueprint, Response, request

from referrals.api.body import json_body
from referrals.api.problems import ApiProblem, validation_problem

bp = Blueprint("api", __name__)


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


from referrals.api import courses as _courses  # noqa: E402,F401  (routes register on import)
from referrals.api import kpi, referrals, views  # noqa: E402,F401  (routes register on import)
