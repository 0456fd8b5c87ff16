"""JSON API v1: bearer tokens, problem+json errors, pagination, and the OpenAPI document."""

from flask import Blueprint, Response

from referrals.api.problems import ApiProblem

bp = Blueprint("api", __name__)


@bp.errorhandler(ApiProblem)
def _answer_problem(error: ApiProblem) -> Response:
    return error.response()


from referrals.api import courses as _courses  # noqa: E402,F401  (routes register on import)
from referrals.api import kpi, referrals, views  # noqa: E402,F401  (routes register on import)
