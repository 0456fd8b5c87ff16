"""API base: bearer tokens, problem+json, pagination and the OpenAPI document."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select

from referrals.auth.models import ApiToken, OrganisationKind, Role
from referrals.auth.services import deactivate_user, revoke_api_tokens
from referrals.extensions import db
from referrals.openapi import openapi_path
from tests import factories


def test_me_describes_the_token_user(api_client):
    client, headers = api_client(Role.LINK_WORKER)
    body = client.get("/api/v1/me", headers=headers).get_json()
    assert body["role"] == "link_worker"
    assert set(body) == {"id", "email", "name", "role", "organisation_id"}


def test_missing_bad_and_revoked_tokens_get_401_problems(api_client, app):
    client, headers = api_client(Role.REFERRER)
    for bad in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = client.get("/api/v1/me", headers=bad)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["status"] == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    user = db.session.scalar(select(ApiToken)).user
    revoke_api_tokens(None, user, "revoked")
    db.session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_deactivated_users_tokens_stop_working(api_client):
    client, headers = api_client(Role.ADMIN)
    user = db.session.scalar(select(ApiToken)).user
    deactivate_user(None, user)
    db.session.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_tokens_are_stored_only_as_hashes(api_client):
    _client, headers = api_client(Role.ADMIN)
    token = headers["Authorization"].split()[1]
    row = db.session.scalar(select(ApiToken))
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.token_hash, row.prefix)


def test_the_api_ignores_session_cookies(login_as):
    client = login_as(Role.ADMIN)
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/me").status_code == 401


def test_organisations_are_for_admins_only(api_client):
    client, headers = api_client(Role.REFERRER)
    response = client.get("/api/v1/organisations", headers=headers)
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


def test_organisations_are_paginated(api_client):
    client, headers = api_client(Role.ADMIN)
    for _ in range(4):
        factories.make_organisation(OrganisationKind.PROVIDER)
    db.session.commit()
    body = client.get("/api/v1/organisations?per_page=2&page=2", headers=headers).get_json()
    assert body["page"] == 2 and body["per_page"] == 2
    assert body["total"] == 5  # the admin's own organisation and four providers
    assert len(body["items"]) == 2
    assert set(body["items"][0]) >= {"id", "name", "kind", "ods_code"}


def test_bad_paging_arguments_are_422_with_field_errors(api_client):
    client, headers = api_client(Role.ADMIN)
    response = client.get("/api/v1/organisations?per_page=101&page=x", headers=headers)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert set(errors) == {"page", "per_page"}


def test_unknown_api_paths_are_404_problems(api_client):
    client, headers = api_client(Role.ADMIN)
    response = client.get("/api/v1/nothing-here", headers=headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_every_api_route_is_in_the_openapi_document(api_client, app):
    client, headers = api_client(Role.ARTIST)
    document = client.get("/api/v1/openapi.json", headers=headers).get_json()
    assert document["openapi"].startswith("3.1")
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path_item = document["paths"].get(openapi_path(rule.rule), {})
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            operation = path_item.get(method.lower())
            if operation is None or "401" not in operation["responses"]:
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def test_openapi_schema_references_resolve(api_client):
    client, headers = api_client(Role.ADMIN)
    document = client.get("/api/v1/openapi.json", headers=headers).get_json()
    refs = set(re.findall(r"#/components/schemas/(\w+)", str(document)))
    assert refs and refs <= set(document["components"]["schemas"])
