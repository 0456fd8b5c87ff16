"""RFC 9457 problem details: every API error has this shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from flask import Response, json

PROBLEM_BASE = "/api/v1/problems/"


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
        "title": title or HTTPStatus(status).phrase,
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
    """Raise from an API view or service to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: Mapping[str, Sequence[str]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.errors = errors
        self.extra = extra

    def response(self) -> Response:
        return problem(
            self.status, detail=self.detail, kind=self.kind, errors=self.errors, **self.extra
        )


def validation_problem(errors: Mapping[str, Sequence[str]]) -> ApiProblem:
    return ApiProblem(422, "The request body has invalid fields", kind="validation", errors=errors)
