"""Core API resources: the caller, organisations, and the published OpenAPI document, its
reference page and the pages explaining each problem type (public: they hold no data)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from referrals.api import bp
from referrals.auth.models import Organisation, Role, User
from referrals.openapi import (
    Answer,
    Page,
    PageQuery,
    build_document,
    columns,
    operation,
    paginate,
)
from referrals.problems import KINDS
from referrals.security import STAFF, allow, public


class Me(Answer):
    __annotations__ = columns(User, "id email name role organisation_id")


class OrganisationOut(Answer):
    __annotations__ = columns(Organisation, "id name kind ods_code active")


@bp.get("/me")
@allow(STAFF)
@operation("accounts", answer=Me)
def me() -> Any:
    """The user the token acts as

    Who may call it: anyone with a token."""
    return current_user


@bp.get("/organisations")
@allow(Role.ADMIN)
@operation("accounts", answer=Page[OrganisationOut])
def organisations(query: PageQuery) -> Any:
    """List organisations

    Who may call it: admin."""
    return paginate(select(Organisation).order_by(Organisation.name, Organisation.id), query)


def _document() -> dict[str, Any]:
    return build_document(current_app._get_current_object())  # type: ignore[attr-defined]


@bp.get("/openapi.json")
@public
@operation("meta")
def openapi_document() -> ResponseReturnValue:
    """This OpenAPI 3.1 document

    Who may call it: anyone; no token."""
    return jsonify(_document())


@bp.get("/docs")
@public
@operation("meta", files={"text/html": "Every operation, schema and problem type, readable."})
def api_docs() -> ResponseReturnValue:
    """The API's reference page

    Who may call it: anyone; no token."""
    return render_template("api/docs.html", document=_document(), kinds=KINDS)


@bp.get("/problems/<kind>")
@public
@operation("meta", problems=[404], files={"text/html": "The problem explained."})
def problem_type(kind: str) -> ResponseReturnValue:
    """What a problem type means

    Who may call it: anyone; no token."""
    if kind not in KINDS:
        abort(404)
    return render_template("api/problem.html", kind=kind, problem=KINDS[kind])
