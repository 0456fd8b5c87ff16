"""RFC 9457 problem details: every JSON error of the service (the API, the Open Referral feed,
rate limits, the error handlers) has this shape, and every `type` is a page that explains it
(`/api/v1/problems/<kind>`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from flask import Response, json

PROBLEM_BASE = "/api/v1/problems/"

# kind: (status, title, what it means and what to do). The problem pages and the OpenAPI
# document are made from this table.
KINDS: dict[str, tuple[int, str, str]] = {
    "validation": (
        422,
        "The request body has invalid fields",
        "A field of the JSON body is missing, of the wrong type or refused by a rule. `errors` "
        "names each field (dotted for nested fields, `entries.2.mood_after`) with plain-English "
        "messages. Nothing was recorded: correct the fields and send the request again.",
    ),
    "invalid-query": (
        422,
        "The query parameters are invalid",
        "A query parameter of the address (such as `page`, `per_page` or a filter) is not "
        "accepted. `errors` names each parameter. Nothing was changed.",
    ),
    "idempotency-key-reused": (
        422,
        "This Idempotency-Key was used for another request",
        "A retry must send the same body as the first request with its key. Send a new key "
        "with a new request.",
    ),
    "duplicate-open-referral": (
        409,
        "The person already has an open referral",
        "The NHS number has a referral that is not closed. Use it, or send "
        "`new_episode_reason` to say why this is a new episode. `open_referral_id` names it "
        "only when the caller may see it.",
    ),
    "transition-refused": (
        422,
        "The lifecycle does not allow this move",
        "The referral's status cannot move as asked (some moves are made only by enrolment), "
        "or not on the date given (before the referral was received). "
        "`detail` says why and `errors` names the field.",
    ),
    "course-rule": (
        409,
        "A course rule refuses the request",
        "The request is well formed but a rule of courses, enrolments or contracts refuses it "
        "(the course is full or finished, the person is not assessed, the dates fall outside "
        "the contract…). `detail` says which; nothing was changed.",
    ),
    "register-refused": (
        409,
        "The register cannot be saved",
        "The session is cancelled, has not happened yet, or is past the artist's edit window.",
    ),
    "conflict": (
        409,
        "The records changed while the request was handled",
        "Another request changed the same records at the same moment. Nothing of this one was "
        "kept: send it again.",
    ),
}


def problem(
    status: int,
    *,
    detail: str | None = None,
    title: str | None = None,
    kind: str | None = None,
    errors: Mapping[str, Sequence[str]] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind if kind else "about:blank",
        "title": title or (KINDS[kind][1] if kind in KINDS else HTTPStatus(status).phrase),
        "status": status,
        "detail": detail or HTTPStatus(status).description,
    }
    if errors:
        body["errors"] = {field: list(messages) for field, messages in errors.items()}
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


class ApiProblem(Exception):
    """Raise from an API view or service to answer with a problem document (`problem`'s
    `kind`, `errors` and extra members by name)."""

    def __init__(self, status: int, detail: str | None = None, **members: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.members = status, detail, members

    def response(self) -> Response:
        return problem(self.status, detail=self.detail, **self.members)


def validation_problem(errors: Mapping[str, Sequence[str]]) -> ApiProblem:
    return ApiProblem(422, KINDS["validation"][1], kind="validation", errors=errors)


def query_problem(errors: Mapping[str, Sequence[str]]) -> ApiProblem:
    return ApiProblem(422, KINDS["invalid-query"][1], kind="invalid-query", errors=errors)
