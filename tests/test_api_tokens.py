"""API tokens: revoked when the password changes; listed and revoked one by one by the person
(account page), an admin (the user's page) and the command line; every issue and revoke audited.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.models import ApiToken, Role, User
from referrals.auth.services import api_tokens_of, issue_api_token
from referrals.extensions import db
from tests import factories
from tests.conftest import TEST_PASSWORD, submit

NEW_PASSWORD = "a brand new long passphrase 7"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def works(app: Flask, token: str) -> bool:
    status = app.test_client().get("/api/v1/me", headers=bearer(token)).status_code
    assert status in (200, 401)
    return status == 200


def issued(user: User, name: str = "") -> tuple[str, ApiToken]:
    token = issue_api_token(None, user, name)
    db.session.commit()
    return token, api_tokens_of(user)[0]


def revocations(token: ApiToken) -> list[AuditEvent]:
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_token.revoked")
    ).all()
    return [event for event in events if event.detail.get("token_id") == token.id]


def test_changing_your_password_revokes_your_api_tokens(
    app: Flask, login_as: Callable[..., FlaskClient]
) -> None:
    client = login_as(Role.REFERRER)
    user: User = client.user  # type: ignore[attr-defined]
    first, first_row = issued(user)
    second, _ = issued(user)
    assert works(app, first) and works(app, second)
    response = submit(
        client,
        "/account/password",
        {
            "current_password": TEST_PASSWORD,
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert not works(app, first) and not works(app, second)
    (event,) = revocations(first_row)
    assert event.actor_id == user.id and event.detail["reason"] == "password changed"


def test_an_admin_resetting_a_password_revokes_the_persons_tokens(
    app: Flask, login_as: Callable[..., FlaskClient]
) -> None:
    admin = login_as(Role.ADMIN)
    person = factories.make_user(Role.LINK_WORKER)
    token, row = issued(person)
    url = f"/admin/users/{person.id}/password"
    data = {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    assert submit(admin, url, data).status_code == 302
    assert not works(app, token)
    (event,) = revocations(row)
    assert event.actor_id == admin.user.id  # type: ignore[attr-defined]


def test_a_person_lists_and_revokes_their_own_tokens_one_by_one(
    app: Flask, login_as: Callable[..., FlaskClient]
) -> None:
    client = login_as(Role.ARTIST)
    user: User = client.user  # type: ignore[attr-defined]
    keep, keep_row = issued(user, "Register tablet")
    drop, drop_row = issued(user, "Old laptop")
    page = client.get("/account/tokens").get_data(as_text=True)
    assert "Register tablet" in page and "Old laptop" in page
    assert f"{keep_row.prefix}…" in page and keep not in page  # never the whole token
    assert 'href="/account/tokens"' in client.get("/").get_data(as_text=True)

    revoke = f"/account/tokens/{drop_row.id}/revoke"
    response = submit(client, revoke, page="/account/tokens")
    assert response.headers["Location"] == "/account/tokens"
    assert not works(app, drop) and works(app, keep)
    (event,) = revocations(drop_row)
    assert event.actor_id == user.id
    assert "Revoked" in client.get("/account/tokens").get_data(as_text=True)
    # Revoking it again changes nothing and records nothing more.
    submit(client, revoke, page="/account/tokens")
    assert len(revocations(drop_row)) == 1


def test_nobody_revokes_someone_elses_token_from_their_own_page(
    app: Flask, login_as: Callable[..., FlaskClient]
) -> None:
    client = login_as(Role.ADMIN)
    other = factories.make_user(Role.REFERRER)
    token, row = issued(other)
    response = submit(client, f"/account/tokens/{row.id}/revoke", page="/account/tokens")
    assert response.status_code == 404
    assert works(app, token)


def test_revoking_needs_the_csrf_token(app: Flask, login_as: Callable[..., FlaskClient]) -> None:
    client = login_as(Role.REFERRER)
    token, row = issued(client.user)  # type: ignore[attr-defined]
    assert client.post(f"/account/tokens/{row.id}/revoke").status_code == 400
    assert works(app, token)


def test_an_admin_lists_and_revokes_a_users_tokens(
    app: Flask, login_as: Callable[..., FlaskClient]
) -> None:
    admin = login_as(Role.ADMIN)
    person = factories.make_user(Role.REFERRER)
    keep, _ = issued(person, "Practice system")
    drop, drop_row = issued(person, "Spare")
    user_page = admin.get(f"/admin/users/{person.id}/edit").get_data(as_text=True)
    tokens_url = f"/admin/users/{person.id}/tokens"
    assert f'href="{tokens_url}"' in user_page
    page = admin.get(tokens_url).get_data(as_text=True)
    assert "Practice system" in page and "Spare" in page

    response = submit(admin, f"/admin/tokens/{drop_row.id}/revoke", page=tokens_url)
    assert response.headers["Location"] == tokens_url
    assert not works(app, drop) and works(app, keep)
    (event,) = revocations(drop_row)
    assert event.actor_id == admin.user.id  # type: ignore[attr-defined]
    assert event.object_id == str(person.id)


def test_issuing_is_audited_with_the_token(app: Flask) -> None:
    person = factories.make_user(Role.REFERRER)
    _, row = issued(person)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api_token.issued"))
    assert event is not None
    assert event.detail == {"token_id": row.id, "prefix": row.prefix}


def test_the_command_line_lists_and_revokes_tokens(app: Flask, runner: Any) -> None:
    person = factories.make_user(Role.LINK_WORKER, email="lw@example.test")
    admin = factories.make_user(Role.ADMIN, email="boss@example.test")
    db.session.commit()
    assert runner.invoke(args=["users", "tokens", "lw@example.test"]).output == "No API tokens.\n"
    by = ["--by", "boss@example.test"]
    # Someone answerable must be named, and be an active admin.
    for refused in ([], ["--by", "lw@example.test"], ["--by", "nobody@example.test"]):
        result = runner.invoke(args=["users", "token", "lw@example.test", *refused])
        assert result.exit_code == 2 and not api_tokens_of(person), refused
    token = runner.invoke(args=["users", "token", "lw@example.test", "--name", "Sync", *by]).output
    token = token.strip()
    row = api_tokens_of(person)[0]

    listing = runner.invoke(args=["users", "tokens", "LW@example.test"]).output
    assert listing.startswith(f"{row.id}\t{row.prefix}…\tSync\tmade ")
    assert listing.rstrip().endswith("working") and token not in listing

    result = runner.invoke(args=["users", "revoke-token", "lw@example.test", str(row.id), *by])
    assert result.exit_code == 0 and "Revoked" in result.output
    assert not works(app, token)
    assert "revoked" in runner.invoke(args=["users", "tokens", "lw@example.test"]).output
    issued_event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "api_token.issued")
    )
    (event,) = revocations(row)
    for logged in (issued_event, event):
        assert logged is not None and logged.actor_id == admin.id
        assert logged.detail["os_user"] == getpass.getuser()

    again = runner.invoke(args=["users", "revoke-token", "lw@example.test", str(row.id), *by])
    assert again.exit_code == 0 and "already been revoked" in again.output


def test_the_command_line_refuses_a_token_of_someone_else_or_unknown(
    app: Flask, runner: Any
) -> None:
    owner = factories.make_user(Role.LINK_WORKER)
    other = factories.make_user(Role.LINK_WORKER, email="other@example.test")
    admin = factories.make_user(Role.ADMIN)
    token, row = issued(owner)
    for args in (
        ["users", "revoke-token", "other@example.test", str(row.id)],
        ["users", "revoke-token", "nobody@example.test", str(row.id)],
        ["users", "revoke-token", "other@example.test", "0"],
        ["users", "revoke-token", "other@example.test", "abc"],
    ):
        result = runner.invoke(args=[*args, "--by", admin.email])
        assert result.exit_code == 2, args
        assert "Error" in result.output
    for args in (
        ["users", "tokens", "nobody@example.test"],
        ["users", "revoke-token", owner.email, str(row.id)],  # nobody answerable named
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 2, args
        assert "Error" in result.output
    assert works(app, token)
    assert other.email == "other@example.test"
