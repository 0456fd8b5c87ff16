"""Reading request bodies: a missing, non-JSON or unreadable body is a 422, never a 500."""

from __future__ import annotations

from typing import Any

from flask import request

from referrals.api.problems import validation_problem


def json_body() -> Any:
    """The parsed JSON body, whatever its shape."""
    if not request.is_json:
        raise validation_problem({"body": ["Send a JSON object as application/json"]})
    try:
        payload = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        payload = None
    if payload is None:
        raise validation_problem({"body": ["Send a JSON object"]})
    return payload


def json_object() -> dict[str, Any]:
    """The parsed JSON body, which must be an object."""
    payload = json_body()
    if not isinstance(payload, dict):
        raise validation_problem({"body": ["Send a JSON object"]})
    return payload
