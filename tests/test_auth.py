"""Sign-in, sessions, throttling, safe redirects, CSRF and deny-by-default access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.models import Role, UserSession
from referrals.auth.services import deactivate_user
from referrals.db import utcnow
from referrals.extensions import db
from referrals.security import PUBLIC, access_rule
from tests import factories
from tests.conftest import TEST_PASSWORD, csrf_token, sign_in, submit

GENERIC = "Enter a correct email address and password"


def test_sign_in_takes_a_referrer_to_their_home_page(client, app):
    user = factories.make_user(Role.REFERRER)
    db.session.commit()
    response = sign_in(client, user.email.upper())
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "Your practice&#39;s referrals" in home.get_data(as_text=True)
    assert db.session.scalar(
        select(AuditEvent).where(
            AuditEvent.action == "login.succeeded", AuditEvent.actor_id == user.id
        )
    )


def test_unknown_account_and_wrong_password_get_the_same_answer(client, app):
    user = factories.make_user(Role.ARTIST)
    db.session.commit()
    wrong = sign_in(client, user.email, "not-the-right-password")
    unknown = sign_in(client, "nobody@example.test", "not-the-right-password")
    assert wrong.status_code == unknown.status_code == 200
    assert GENERIC in wrong.get_data(as_text=True)
    assert GENERIC in unknown.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_inactive_account_cannot_sign_in(client, app):
    user = factories.make_user(Role.ARTIST, active=False)
    db.session.commit()
    response = sign_in(client, user.email)
    assert GENERIC in response.get_data(as_text=True)


def test_missing_fields_are_reported_at_the_field(client, app):
    response = submit(client, "/sign-in", {"email": "", "password": ""})
    page = response.get_data(as_text=True)
    assert "Enter your email address" in page
    assert "Enter your password" in page
    assert 'href="#email"' in page


def test_throttles_after_ten_failures_even_with_the_right_password(client, app):
    user = factories.make_user(Role.LINK_WORKER)
    db.session.commit()
    for _ in range(10):
        sign_in(client, user.email, "wrong-password-here")
    response = sign_in(client, user.email, TEST_PASSWORD)
    assert "Too many failed attempts" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    # Another account is unaffected: the throttle cannot lock everyone out.
    other = factories.make_user(Role.LINK_WORKER)
    db.session.commit()
    assert sign_in(app.test_client(), other.email).status_code == 302


def test_throttle_window_expires(client, app):
    from referrals.auth.models import LoginAttempt

    user = factories.make_user(Role.LINK_WORKER)
    old = utcnow() - timedelta(minutes=6)
    db.session.add_all(LoginAttempt(email=user.email, at=old) for _ in range(10))
    db.session.commit()
    assert sign_in(client, user.email).status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "http:/evil.example",
        "\t//evil.example",
        "evil.example",
    ],
)
def test_next_only_follows_local_paths(client, app, target):
    user = factories.make_user(Role.ADMIN)
    db.session.commit()
    url = "/sign-in?next=" + target
    response = submit(client, url, {"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_follows_a_local_path(client, app):
    user = factories.make_user(Role.ADMIN)
    db.session.commit()
    response = submit(
        client, "/sign-in?next=/messages/", {"email": user.email, "password": TEST_PASSWORD}
    )
    assert response.headers["Location"] == "/messages/"


def test_session_is_renewed_at_sign_in(client, app):
    user = factories.make_user(Role.ADMIN)
    db.session.commit()
    client.get("/sign-in")
    before = client.get_cookie("aop_session")
    sign_in(client, user.email)
    after = client.get_cookie("aop_session")
    assert after is not None and (before is None or before.value != after.value)
    assert db.session.scalar(select(UserSession).where(UserSession.user_id == user.id))


def test_replayed_cookie_after_sign_out_is_refused(client, app):
    user = factories.make_user(Role.ADMIN)
    db.session.commit()
    sign_in(client, user.email)
    stolen = client.get_cookie("aop_session").value
    response = submit(client, "/sign-out", page="/")
    assert response.status_code == 302
    replay = app.test_client()
    replay.set_cookie("aop_session", stolen, domain="localhost")
    assert replay.get("/").status_code == 302  # back to sign in


def test_deactivation_ends_existing_sessions(login_as, app):
    client = login_as(Role.ARTIST)
    assert client.get("/").status_code == 200
    deactivate_user(None, client.user)
    db.session.commit()
    assert client.get("/").status_code == 302


def test_idle_timeout_is_enforced_server_side(login_as, app):
    client = login_as(Role.ARTIST)
    row = db.session.scalar(select(UserSession).where(UserSession.user_id == client.user.id))
    row.last_seen_at = utcnow() - timedelta(minutes=31)
    db.session.commit()
    assert client.get("/").status_code == 302


def test_absolute_timeout_is_enforced_server_side(login_as, app):
    client = login_as(Role.ARTIST)
    row = db.session.scalar(select(UserSession).where(UserSession.user_id == client.user.id))
    row.created_at = utcnow() - timedelta(hours=8, minutes=1)
    db.session.commit()
    assert client.get("/").status_code == 302


def test_post_without_csrf_token_is_refused(client, app):
    user = factories.make_user(Role.ADMIN)
    db.session.commit()
    response = client.post("/sign-in", data={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert "Your form has expired" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_passwords_are_hashed_with_argon2id_at_owasp_strength(app):
    from referrals.auth.passwords import hash_password

    app.config.update(ARGON2_MEMORY_COST_KIB=64 * 1024, ARGON2_TIME_COST=3)
    try:
        encoded = hash_password("a-long-test-passphrase")
    finally:
        app.config.update(ARGON2_MEMORY_COST_KIB=19 * 1024, ARGON2_TIME_COST=2)
    assert encoded.startswith("$argon2id$")
    fields = dict(part.split("=") for part in encoded.split("$")[3].split(","))
    assert (int(fields["m"]), int(fields["t"])) == (64 * 1024, 3)  # the configured cost is used


def test_production_defaults_are_owasp_strength():
    from referrals.config import Defaults

    assert Defaults.ARGON2_MEMORY_COST_KIB >= 19 * 1024
    assert Defaults.ARGON2_TIME_COST >= 2


def sample_arguments(rule):
    """A value each URL argument accepts: an id, or the first choice of an `any(...)` part."""
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        items = getattr(converter, "items", None)
        values[name] = sorted(items)[0] if items else 1
    return values


def test_every_route_but_the_allowlist_needs_a_login(client, app: Flask):
    public = {
        "auth.login",
        "main.health",
        "main.health_live",
        "main.health_ready",
        "main.version",
        "main.accessibility",
        "main.privacy",
        "static",
        # The open directory: the course finder, self-referral and the Open Referral UK feed.
        "public.finder",
        "public.course",
        "public.refer_yourself_page",
        "public.thank_you",
        "openreferral.meta",
        "openreferral.services",
        "openreferral.service",
        "openreferral.service_at_locations",
        "openreferral.service_at_location",
        "openreferral.taxonomies",
        "openreferral.taxonomy",
        "openreferral.taxonomy_terms",
        "openreferral.taxonomy_term",
        "api.openreferral_services",  # moved: a redirect to the open feed
        # The API's published description: its document, reference page and problem types.
        "api.openapi_document",
        "api.api_docs",
        "api.problem_type",
        # Signed tokens in a message: stop messages, or take or turn down a place; no names.
        "notifications.stop",
        "notifications.offer",
        # GOV.UK Notify's callbacks: its bearer token, compared in the view; 404 without one set.
        "notifications.notify_received_text",
        "notifications.notify_delivery_receipt",
        # Static files in all but name: the browser fetches both without a sign-in (the manifest
        # without cookies, the service worker when looking for updates); neither holds data.
        "courses.manifest",
        "courses.service_worker",
    }
    for rule in app.url_map.iter_rules():
        rule_access = access_rule(rule.endpoint)
        if rule.endpoint in public:
            assert rule_access == PUBLIC
            continue
        assert rule_access != PUBLIC, f"{rule.endpoint} is public but not on the allowlist"
        url = rule.build(sample_arguments(rule), append_unknown=False)[1]
        for method in sorted((rule.methods or set()) - {"HEAD"}):
            response = client.open(url, method=method)
            if rule.rule.startswith("/api/"):
                assert response.status_code == 401, (method, url)
            elif method in ("GET", "OPTIONS"):
                assert response.status_code == 302, (method, url)
                assert "/sign-in" in response.headers["Location"]
            else:
                assert response.status_code in (302, 400), (method, url)


def test_a_route_without_an_access_rule_is_refused_to_everyone(app, login_as):
    # The rule is checked at request time, so a forgotten decorator fails closed.
    def undecorated():
        return "secret"

    app.view_functions["main.home"], original = undecorated, app.view_functions["main.home"]
    try:
        client = login_as(Role.ADMIN)
        assert client.get("/").status_code == 403
    finally:
        app.view_functions["main.home"] = original


def test_role_checks_refuse_and_audit(login_as, app):
    client = login_as(Role.REFERRER)
    response = client.get("/api/v1/organisations")  # no token: the API ignores cookies
    assert response.status_code == 401
    client.get("/account/password")
    assert client.get("/").status_code == 200


def test_security_headers_on_every_page(client, app):
    response = client.get("/sign-in")
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert "script-src 'self' 'nonce-" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_hsts_when_served_over_https(client, app):
    response = client.get("/sign-in", base_url="https://localhost")
    assert "max-age=" in response.headers["Strict-Transport-Security"]


def test_change_password_revokes_sessions_and_applies_the_policy(login_as, app):
    client = login_as(Role.LINK_WORKER)
    other_device = app.test_client()
    sign_in(other_device, client.user.email)
    weak = submit(
        client,
        "/account/password",
        {
            "current_password": TEST_PASSWORD,
            "new_password": "password1234",
            "confirm_password": "password1234",
        },
    )
    assert "too common" in weak.get_data(as_text=True)
    ok = submit(
        client,
        "/account/password",
        {
            "current_password": TEST_PASSWORD,
            "new_password": "river stones and lanterns",
            "confirm_password": "river stones and lanterns",
        },
    )
    assert ok.status_code == 302
    assert other_device.get("/").status_code == 302
    assert (
        sign_in(app.test_client(), client.user.email, "river stones and lanterns").status_code
        == 302
    )


def test_sign_out_requires_post_with_csrf(login_as):
    client = login_as(Role.ADMIN)
    assert client.post("/sign-out").status_code == 400
    assert client.get("/").status_code == 200
    token = csrf_token(client, "/")
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_control_characters_at_sign_in_are_a_field_error_not_a_crash(client, app):
    response = submit(client, "/sign-in", {"email": "a\x00@example.test", "password": "x\x00y"})
    assert response.status_code == 200
    assert "must not contain control characters" in response.get_data(as_text=True)


def test_odd_page_numbers_fall_back_to_the_first_page(login_as):
    client = login_as(Role.ADMIN)
    assert client.get("/messages/?page=%C2%B2").status_code == 200


def test_static_files_are_served_without_sign_in(client, app):
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert (
        "Cache-Control" not in response.headers
        or "no-store" not in response.headers["Cache-Control"]
    )


def test_ids_too_big_for_the_database_are_not_found(login_as, api_client):
    client = login_as(Role.ADMIN)
    assert client.get("/referrals/99999999999999999999").status_code == 404
    api, headers = api_client(Role.ADMIN)
    assert api.get("/api/v1/referrals/99999999999999999999", headers=headers).status_code == 404
