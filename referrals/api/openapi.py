"""The OpenAPI 3.1 document, assembled from the operations attached to each API view.

Each API view carries its operation object (`@operation(...)`); the document walks the URL map,
so a route without one is visibly missing and the completeness test fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

F = TypeVar("F", bound=Callable[..., Any])

OPENAPI_ATTRIBUTE = "openapi_operation"
API_PREFIX = "/api/v1"

PROBLEM_RESPONSE = {
    "description": "Problem details (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}

# Shared schemas. Areas add theirs with `register_schema` at import time.
SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "object",
                "description": "Field name (dotted for nested fields) to messages",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

PAGE_PARAMETERS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {
        "name": "per_page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
    },
]


def register_schema(name: str, schema: dict[str, Any]) -> None:
    SCHEMAS[name] = schema


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "page", "per_page", "total"],
        "properties": {
            "items": {"type": "array", "items": ref(name)},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer"},
        },
    }


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def operation(
    summary: str,
    *,
    responses: dict[int, dict[str, Any]],
    roles: str,
    request_body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
) -> Callable[[F], F]:
    """Attach an OpenAPI operation to a view. 401 and 403 are added for every operation."""

    def decorate(view: F) -> F:
        op: dict[str, Any] = {
            "summary": summary,
            "description": f"Who may call it: {roles}.",
            "operationId": view.__name__,
            "responses": {str(code): body for code, body in responses.items()},
        }
        op["responses"].setdefault("401", PROBLEM_RESPONSE)
        op["responses"].setdefault("403", PROBLEM_RESPONSE)
        if tags:
            op["tags"] = tags
        if parameters:
            op["parameters"] = parameters
        if request_body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": request_body}},
            }
        setattr(view, OPENAPI_ATTRIBUTE, op)
        return view

    return decorate


_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")


def openapi_path(rule: str) -> str:
    """`/api/v1/referrals/<int:referral_id>` -> `/referrals/{referral_id}`."""
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule[len(API_PREFIX) :])


def _path_parameters(rule: str) -> list[dict[str, Any]]:
    parameters = []
    for match in _CONVERTER.finditer(rule):
        kind = "integer" if match.group("conv") == "int" else "string"
        parameters.append(
            {"name": match.group("name"), "in": "path", "required": True, "schema": {"type": kind}}
        )
    return parameters


def build_document(app: Flask) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        view = app.view_functions[rule.endpoint]
        op = getattr(view, OPENAPI_ATTRIBUTE, None)
        if op is None:
            continue
        item = paths.setdefault(openapi_path(rule.rule), {})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry = dict(op)
            path_params = _path_parameters(rule.rule)
            if path_params:
                entry["parameters"] = path_params + list(op.get("parameters", []))
            if len(rule.methods or ()) > 3:
                entry["operationId"] = f"{op['operationId']}_{method.lower()}"
            item[method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{app.config['SERVICE_NAME']} API",
            "version": "1.0.0",
            "description": (
                "JSON API for referrals, courses, registers, wellbeing and KPI returns. "
                "Authenticate with `Authorization: Bearer <token>` (`flask users token EMAIL`). "
                "Errors are application/problem+json. Lists are paginated with `page` and "
                "`per_page` (at most 100)."
            ),
        },
        "servers": [{"url": API_PREFIX}],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(SCHEMAS.items())),
        },
    }
