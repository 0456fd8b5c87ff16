"""Core API resources: the caller, organisations and the OpenAPI document itself."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from referrals.api import bp
from referrals.api.openapi import (
    PAGE_PARAMETERS,
    PROBLEM_RESPONSE,
    build_document,
    json_response,
    operation,
    page_of,
    ref,
    register_schema,
)
from referrals.api.pagination import paginate
from referrals.auth.models import Organisation, OrganisationKind, Role
from referrals.security import STAFF, allow

register_schema(
    "Me",
    {
        "type": "object",
        "required": ["id", "email", "name", "role", "organisation_id"],
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string", "format": "email"},
            "name": {"type": "string"},
            "role": {"type": "string", "enum": [r.value for r in Role]},
            "organisation_id": {"type": "integer"},
        },
    },
)
register_schema(
    "Organisation",
    {
        "type": "object",
        "required": ["id", "name", "kind", "ods_code"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in OrganisationKind]},
            "ods_code": {"type": ["string", "null"]},
            "active": {"type": "boolean"},
        },
    },
)


def organisation_json(organisation: Organisation) -> dict[str, Any]:
    return {
        "id": organisation.id,
        "name": organisation.name,
        "kind": organisation.kind.value,
        "ods_code": organisation.ods_code,
        "active": organisation.active,
    }


@bp.get("/me")
@allow(STAFF)
@operation(
    "The caller",
    roles="anyone with a token",
    tags=["accounts"],
    responses={200: json_response("The user the token acts as", ref("Me"))},
)
def me() -> ResponseReturnValue:
    return jsonify(
        id=current_user.id,
        email=current_user.email,
        name=current_user.name,
        role=current_user.role.value,
        organisation_id=current_user.organisation_id,
    )


@bp.get("/organisations")
@allow(Role.ADMIN)
@operation(
    "List organisations",
    roles="admin",
    tags=["accounts"],
    parameters=PAGE_PARAMETERS,
    responses={
        200: json_response("A page of organisations", page_of("Organisation")),
        422: PROBLEM_RESPONSE,
    },
)
def organisations() -> ResponseReturnValue:
    query = select(Organisation).order_by(Organisation.name, Organisation.id)
    return jsonify(paginate(query, organisation_json))


@bp.get("/openapi.json")
@allow(STAFF)
@operation(
    "This OpenAPI document",
    roles="anyone with a token",
    tags=["meta"],
    responses={200: json_response("OpenAPI 3.1 document", {"type": "object"})},
)
def openapi_document() -> ResponseReturnValue:
    return jsonify(build_document(current_app._get_current_object()))  # type: ignore[attr-defined]
