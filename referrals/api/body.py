"""Reading request bodies by hand, for operations not yet described by models."""

from __future__ import annotations

from typing import Any

from referrals.api.openapi import json_body
from referrals.api.problems import validation_problem


def json_object() -> dict[str, Any]:
    """The parsed JSON body, which must be an object."""
    payload = json_body()
    if not isinstance(payload, dict):
        raise validation_problem({"body": ["Send a JSON object"]})
    return payload
