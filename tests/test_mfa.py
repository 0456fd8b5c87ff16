"""Two-step verification: set-up, the code step of sign-in, throttling, replay, recovery codes,
expiry, the per-role requirement and the admin's security page.

Sign-in goes through the real forms with CSRF on; codes are computed with pyotp from the
secret, at a clock the test controls (the service reads the time through `mfa.utcnow`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals import create_app
from referrals.audit import AuditEvent
from referrals.auth import mfa
from referrals.auth.models import RecoveryCode, Role, SecuritySetting, User, UserSession
from referrals.auth.services import set_password
from referrals.extensions import db
from tests import factories
from tests.conftest import TEST_PASSWORD, csrf_token, sign_in, submit

CODE_URL = "/sign-in/code"
WRONG_CODE = "The code is not correct"
THROTTLED = "Too many failed attempts"


class Clock:
    """The service's clock, 5 seconds into a 30-second TOTP step."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(mfa, "utcnow", fake)
    return fake


def code_at(secret: str, clock: Clock) -> str:
    return pyotp.TOTP(secret).at(clock.now)


def wrong_code(secret: str, clock: Clock) -> str:
    """A 6-digit code that no step in the accepted window produces."""
    totp = pyotp.TOTP(secret)
    valid = {totp.at(clock.now + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


def enrolled_user(role: Role = Role.LINK_WORKER, **kwargs: Any) -> tuple[User, str, list[str]]:
    """A user who has turned two-step verification on: (user, secret, recovery codes)."""
    user = factories.make_user(role, **kwargs)
    user.totp_secret = pyotp.random_base32()
    user.mfa_enabled_at = datetime.now(UTC)
    codes = mfa.replace_recovery_codes(user)
    db.session.commit()
    return user, user.totp_secret, codes


def enter_code(client: FlaskClient, code: str) -> Any:
    return submit(client, CODE_URL, {"code": code})


def sessions_of(user: User) -> int:
    return db.session.scalar(
        select(func.count()).select_from(UserSession).where(UserSession.user_id == user.id)
    )


def events(action: str, **where: Any) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    for name, value in where.items():
        query = query.where(getattr(AuditEvent, name) == value)
    return list(db.session.scalars(query))


def assert_signed_out(client: FlaskClient, user: User) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in")
    assert sessions_of(user) == 0


def sign_in_fully(client: FlaskClient, user: User, secret: str, clock: Clock) -> None:
    assert sign_in(client, user.email).headers["Location"] == CODE_URL
    assert enter_code(client, code_at(secret, clock)).status_code == 302


def sign_out(client: FlaskClient) -> None:
    assert submit(client, "/sign-out", page="/").status_code == 302


# Set-up --------------------------------------------------------------------------------------


def _secret_on(page: str) -> str:
    match = re.search(r'<code id="secret">([A-Z2-7 ]+)</code>', page)
    assert match, "no secret on the set-up page"
    return match.group(1).replace(" ", "")


def test_setting_up_shows_a_qr_code_and_key_and_recovery_codes_once(
    login_as: Callable[..., FlaskClient], clock: Clock
) -> None:
    client = login_as(Role.ARTIST)
    user = client.user  # type: ignore[attr-defined]
    intro = client.get("/account/mfa").get_data(as_text=True)
    assert "Set up two-step verification" in intro
    db.session.expire_all()
    assert user.totp_secret is None  # viewing the page changes nothing

    assert submit(client, "/account/mfa/start", page="/account/mfa").status_code == 302
    page = client.get("/account/mfa").get_data(as_text=True)
    secret = _secret_on(page)
    db.session.expire_all()
    assert secret == user.totp_secret and user.mfa_enabled_at is None
    qr = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert qr, "no QR code"
    svg = base64.b64decode(qr.group(1)).decode()
    assert svg.startswith("<svg") and "style" not in svg

    wrong = submit(client, "/account/mfa/confirm", {"code": wrong_code(secret, clock)})
    assert wrong.status_code == 200
    assert "The code is not correct" in wrong.get_data(as_text=True)
    db.session.expire_all()
    assert user.mfa_enabled_at is None

    shown = submit(
        client, "/account/mfa/confirm", {"code": code_at(secret, clock)}, page="/account/mfa"
    )
    assert shown.status_code == 200
    assert shown.headers["Cache-Control"] == "no-store"
    codes = re.findall(
        r"<code>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</code>", shown.text
    )
    assert len(set(codes)) == 10
    db.session.expire_all()
    assert user.mfa_enabled_at is not None
    stored = set(db.session.scalars(select(RecoveryCode.code_hash)))
    assert len(stored) == 10 and not stored & set(codes)  # only hashes are kept
    assert events("mfa.enabled", actor_id=user.id)

    later = client.get("/account/mfa").get_data(as_text=True)
    assert "On</strong>" in later and "10 unused recovery codes" in later
    assert not any(code in later for code in codes) and secret not in later.replace(" ", "")


def test_turning_it_on_signs_out_other_devices(
    login_as: Callable[..., FlaskClient], app: Flask, clock: Clock
) -> None:
    client = login_as(Role.REFERRER)
    user = client.user  # type: ignore[attr-defined]
    other_device = app.test_client()
    sign_in(other_device, user.email)
    assert other_device.get("/").status_code == 200
    submit(client, "/account/mfa/start", page="/account/mfa")
    secret = _secret_on(client.get("/account/mfa").get_data(as_text=True))
    submit(client, "/account/mfa/confirm", {"code": code_at(secret, clock)}, page="/account/mfa")
    assert client.get("/").status_code == 200
    assert other_device.get("/").status_code == 302


def test_starting_set_up_needs_a_post_with_a_csrf_token(login_as: Callable[..., FlaskClient]):
    client = login_as(Role.ARTIST)
    assert client.post("/account/mfa/start").status_code == 400
    db.session.expire_all()
    assert client.user.totp_secret is None  # type: ignore[attr-defined]


# Sign-in -------------------------------------------------------------------------------------


def test_sign_in_needs_the_code_before_any_session(client: FlaskClient, clock: Clock) -> None:
    user, secret, _codes = enrolled_user()
    client.get("/sign-in")
    before = client.get_cookie("aop_session")

    response = sign_in(client, user.email)
    assert response.status_code == 302
    assert response.headers["Location"] == CODE_URL
    assert_signed_out(client, user)
    assert client.get("/account/mfa").status_code == 302
    assert not events("login.succeeded")
    assert events("mfa.challenged", object_id=str(user.id))
    assert "Enter your code" in client.get(CODE_URL).get_data(as_text=True)

    response = enter_code(client, code_at(secret, clock))
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert sessions_of(user) == 1
    after = client.get_cookie("aop_session")
    assert after is not None and (before is None or after.value != before.value)
    [event] = events("login.succeeded", actor_id=user.id)
    assert event.detail["second_factor"] == "totp"


def test_the_code_step_keeps_a_local_next_page(client: FlaskClient, clock: Clock) -> None:
    user, secret, _codes = enrolled_user()
    submit(client, "/sign-in?next=/messages/", {"email": user.email, "password": TEST_PASSWORD})
    response = enter_code(client, code_at(secret, clock))
    assert response.headers["Location"] == "/messages/"


def test_the_code_step_is_closed_without_a_right_password(client: FlaskClient, clock: Clock):
    user, secret, _codes = enrolled_user()
    response = client.get(CODE_URL)
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"
    sign_in(client, user.email, "not-the-right-password")
    token = csrf_token(client, "/sign-in")
    response = client.post(CODE_URL, data={"code": code_at(secret, clock), "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"
    assert_signed_out(client, user)


def test_users_without_two_step_verification_sign_in_with_the_password(
    login_as: Callable[..., FlaskClient],
) -> None:
    for role in Role:
        assert login_as(role).get("/").status_code == 200


def test_wrong_codes_are_refused_and_share_the_password_throttle(
    client: FlaskClient, app: Flask, clock: Clock
) -> None:
    user, secret, _codes = enrolled_user()
    for _ in range(5):
        sign_in(client, user.email, "wrong-password-here")
    sign_in(client, user.email)
    for _ in range(4):
        response = enter_code(client, wrong_code(secret, clock))
        assert response.status_code == 200
        assert WRONG_CODE in response.get_data(as_text=True)
        assert_signed_out(client, user)
    assert events("mfa.failed", object_id=str(user.id))
    # A mistyped recovery code counts too: that makes ten failures in the window.
    response = enter_code(client, "aaaa-bbbb-cccc-dddd")
    assert WRONG_CODE in response.get_data(as_text=True)

    response = enter_code(client, code_at(secret, clock))
    assert THROTTLED in response.get_data(as_text=True)
    assert_signed_out(client, user)
    # The challenge is over, and the password step is throttled as well.
    assert client.get(CODE_URL).headers["Location"] == "/sign-in"
    assert THROTTLED in sign_in(client, user.email).get_data(as_text=True)
    # Other accounts are unaffected.
    other, other_secret, _ = enrolled_user()
    other_client = app.test_client()
    sign_in_fully(other_client, other, other_secret, clock)
    assert other_client.get("/").status_code == 200


def test_a_code_is_accepted_only_once(client: FlaskClient, app: Flask, clock: Clock) -> None:
    user, secret, _codes = enrolled_user()
    code = code_at(secret, clock)
    sign_in(client, user.email)
    assert enter_code(client, code).status_code == 302
    sign_out(client)

    replay = app.test_client()
    sign_in(replay, user.email)
    response = enter_code(replay, code)
    assert WRONG_CODE in response.get_data(as_text=True)
    assert replay.get("/").status_code == 302
    # A step later the code is still inside the window, and still refused.
    clock.advance(seconds=30)
    assert WRONG_CODE in enter_code(replay, code).get_data(as_text=True)
    assert enter_code(replay, code_at(secret, clock)).status_code == 302
    assert replay.get("/").status_code == 200


def test_codes_one_step_either_side_of_now_are_accepted(client: FlaskClient, clock: Clock):
    totp_at = lambda secret, seconds: pyotp.TOTP(secret).at(clock.now + timedelta(seconds=seconds))  # noqa: E731
    for seconds, accepted in ((-30, True), (30, True), (-60, False), (60, False)):
        user, secret, _codes = enrolled_user()
        sign_in(client, user.email)
        response = enter_code(client, totp_at(secret, seconds))
        assert (response.status_code == 302) is accepted, seconds
        if accepted:
            sign_out(client)


def test_a_recovery_code_works_once(client: FlaskClient, app: Flask, clock: Clock) -> None:
    user, _secret, codes = enrolled_user()
    sign_in(client, user.email)
    response = enter_code(client, " " + codes[0].upper().replace("-", " ") + " ")
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    [used] = events("mfa.recovery_code_used", actor_id=user.id)
    assert used.detail["left"] == 9
    assert events("login.succeeded", actor_id=user.id)[0].detail["second_factor"] == (
        "recovery_code"
    )
    sign_out(client)

    again = app.test_client()
    sign_in(again, user.email)
    assert WRONG_CODE in enter_code(again, codes[0]).get_data(as_text=True)
    assert again.get("/").status_code == 302
    assert enter_code(again, codes[1]).status_code == 302


def test_recovery_codes_of_another_user_do_not_work(client: FlaskClient, clock: Clock) -> None:
    user, _secret, _codes = enrolled_user()
    _other, _other_secret, other_codes = enrolled_user()
    sign_in(client, user.email)
    assert WRONG_CODE in enter_code(client, other_codes[0]).get_data(as_text=True)
    assert_signed_out(client, user)


def test_the_challenge_expires_after_five_minutes(client: FlaskClient, clock: Clock) -> None:
    user, secret, _codes = enrolled_user()
    sign_in(client, user.email)
    token = csrf_token(client, CODE_URL)
    clock.advance(minutes=5, seconds=1)
    response = client.post(CODE_URL, data={"code": code_at(secret, clock), "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in"
    assert "Your sign-in timed out" in client.get("/sign-in").get_data(as_text=True)
    assert_signed_out(client, user)

    # Within the five minutes it still works.
    sign_in(client, user.email)
    token = csrf_token(client, CODE_URL)
    clock.advance(minutes=4, seconds=50)
    response = client.post(CODE_URL, data={"code": code_at(secret, clock), "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_a_password_reset_ends_an_open_challenge(client: FlaskClient, clock: Clock) -> None:
    user, secret, _codes = enrolled_user()
    sign_in(client, user.email)
    token = csrf_token(client, CODE_URL)
    set_password(None, user, "a brand new passphrase here")
    db.session.commit()
    response = client.post(CODE_URL, data={"code": code_at(secret, clock), "csrf_token": token})
    assert response.headers["Location"] == "/sign-in"
    assert_signed_out(client, user)


# Turning it off, new recovery codes, admin reset -----------------------------------------------


def _turn_off(client: FlaskClient, password: str, code: str) -> Any:
    return submit(
        client,
        "/account/mfa/disable",
        {"disable_password": password, "disable_code": code},
        page="/account/mfa",
    )


def test_turning_it_off_needs_the_password_and_a_current_code(
    client: FlaskClient, app: Flask, clock: Clock
) -> None:
    user, secret, codes = enrolled_user()
    sign_in_fully(client, user, secret, clock)
    clock.advance(seconds=30)
    # Either alone is not enough, nor a recovery code, nor the code just used to sign in.
    for password, code in (
        ("not-my-password-at-all", code_at(secret, clock)),
        (TEST_PASSWORD, ""),
        (TEST_PASSWORD, codes[0]),
        ("", code_at(secret, clock)),
    ):
        refused = _turn_off(client, password, code)
        assert refused.status_code == 200, (password, code)
        db.session.expire_all()
        assert user.mfa_enabled_at is not None
    assert "The password or the code is not correct" in _turn_off(
        client, "wrong password here", code_at(secret, clock)
    ).get_data(as_text=True)
    # A wrong password never uses up the code: the same code still works with the password.
    response = _turn_off(client, TEST_PASSWORD, code_at(secret, clock))
    assert response.status_code == 302
    db.session.expire_all()
    assert user.mfa_enabled_at is None and user.totp_secret is None
    assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 0
    (event,) = events("mfa.disabled", actor_id=user.id)
    assert event.detail["old"]["on_since"] and event.detail["new"] is None
    assert events("mfa.reauthentication_failed", actor_id=user.id)
    fresh = app.test_client()
    assert sign_in(fresh, user.email).headers["Location"] == "/"


def test_the_code_used_to_sign_in_cannot_turn_it_off(client: FlaskClient, clock: Clock) -> None:
    user, secret, _codes = enrolled_user()
    sign_in_fully(client, user, secret, clock)
    spent = _turn_off(client, TEST_PASSWORD, code_at(secret, clock))
    assert "The password or the code is not correct" in spent.get_data(as_text=True)
    clock.advance(seconds=30)
    assert _turn_off(client, TEST_PASSWORD, code_at(secret, clock)).status_code == 302


def test_a_role_that_requires_it_cannot_turn_it_off(
    client: FlaskClient, app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MFA_REQUIRED_ROLES", ["commissioner"])
    user, secret, _codes = enrolled_user(Role.COMMISSIONER)
    sign_in_fully(client, user, secret, clock)
    page = client.get("/account/mfa").get_data(as_text=True)
    assert "cannot be turned off" in page
    clock.advance(seconds=30)
    response = _turn_off(client, TEST_PASSWORD, code_at(secret, clock))
    assert "cannot be turned off" in response.get_data(as_text=True)
    db.session.expire_all()
    assert user.mfa_enabled_at is not None


def test_new_recovery_codes_replace_the_old_ones(
    client: FlaskClient, app: Flask, clock: Clock
) -> None:
    user, secret, old_codes = enrolled_user()
    sign_in_fully(client, user, secret, clock)
    response = submit(
        client,
        "/account/mfa/recovery-codes",
        {"codes_confirmation": TEST_PASSWORD},
        page="/account/mfa",
    )
    assert response.status_code == 200
    new_codes = re.findall(r"<code>([a-z2-9-]{19})</code>", response.get_data(as_text=True))
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    sign_out(client)
    other = app.test_client()
    sign_in(other, user.email)
    assert WRONG_CODE in enter_code(other, old_codes[0]).get_data(as_text=True)
    assert enter_code(other, new_codes[0]).status_code == 302


def test_an_admin_can_reset_it_for_someone_who_lost_their_phone(
    login_as: Callable[..., FlaskClient], app: Flask, clock: Clock
) -> None:
    admin_user, admin_secret, _ = enrolled_user(Role.ADMIN)
    admin = app.test_client()
    sign_in_fully(admin, admin_user, admin_secret, clock)
    user, secret, _codes = enrolled_user()
    device = app.test_client()
    sign_in_fully(device, user, secret, clock)
    url = f"/admin/users/{user.id}/two-step"
    assert f'href="{url}"' in admin.get("/admin/security").get_data(as_text=True)
    assert "Reset two-step verification?" in admin.get(url).get_data(as_text=True)
    clock.advance(seconds=30)
    # The admin's own password and a current code from their own app.
    refused = submit(admin, url, {"password": TEST_PASSWORD, "code": code_at(secret, clock)})
    assert "The password or the code is not correct" in refused.get_data(as_text=True)
    reset = {"password": TEST_PASSWORD, "code": code_at(admin_secret, clock)}
    assert submit(admin, url, reset).status_code == 302
    db.session.expire_all()
    assert user.mfa_enabled_at is None and user.totp_secret is None
    assert device.get("/").status_code == 302  # signed out everywhere
    (event,) = events("mfa.reset", actor_id=admin_user.id)
    assert event.detail["old"]["on_since"] and event.detail["new"] is None
    assert login_as(Role.LINK_WORKER).get(url).status_code == 403


# Roles that must use it ----------------------------------------------------------------------


def test_a_required_role_must_set_it_up_before_anything_else(
    login_as: Callable[..., FlaskClient], app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MFA_REQUIRED_ROLES", ["commissioner"])
    client = login_as(Role.COMMISSIONER)
    user = client.user  # type: ignore[attr-defined]
    password_changed_at = user.password_changed_at
    for url in ("/", "/messages/", "/account/password", "/returns/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"] == "/account/mfa", url
    changed = submit(
        client,
        "/account/password",
        {
            "current_password": TEST_PASSWORD,
            "new_password": "river stones and lanterns",
            "confirm_password": "river stones and lanterns",
        },
        page="/account/mfa",
    )
    assert changed.headers["Location"] == "/account/mfa"
    db.session.expire_all()
    assert user.password_changed_at == password_changed_at  # the view never ran
    # Set-up, public pages and static files stay open.
    assert "Your role needs two-step verification" in client.get("/account/mfa").text
    for url in ("/accessibility", "/static/css/app.css"):
        assert client.get(url).status_code == 200, url
    # Other roles are not affected.
    assert login_as(Role.LINK_WORKER).get("/").status_code == 200

    submit(client, "/account/mfa/start", page="/account/mfa")
    secret = _secret_on(client.get("/account/mfa").get_data(as_text=True))
    submit(client, "/account/mfa/confirm", {"code": code_at(secret, clock)}, page="/account/mfa")
    assert client.get("/").status_code == 200


def test_a_required_role_can_still_sign_out(
    login_as: Callable[..., FlaskClient], app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MFA_REQUIRED_ROLES", ["artist"])
    client = login_as(Role.ARTIST)
    assert submit(client, "/sign-out", page="/account/mfa").headers["Location"] == "/sign-in"
    assert client.get("/account/mfa").status_code == 302


def test_the_admin_security_page_sets_which_roles_must_use_it(
    login_as: Callable[..., FlaskClient], app: Flask, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "MFA_REQUIRED_ROLES", ["commissioner"])
    admin_user, secret, _codes = enrolled_user(Role.ADMIN)
    admin = app.test_client()
    sign_in_fully(admin, admin_user, secret, clock)
    page = admin.get("/admin/security").get_data(as_text=True)
    assert "come from the service's configuration" in page
    assert re.search(r'value="commissioner"\s+checked', page)

    def change(data: dict[str, Any]) -> Any:
        clock.advance(seconds=30)
        confirm = {"password": TEST_PASSWORD, "code": code_at(secret, clock)}
        return submit(admin, "/admin/security", {**data, **confirm})

    # One POST is not enough: the password and a current code are asked for again.
    for confirm in ({}, {"password": TEST_PASSWORD}, {"code": code_at(secret, clock)}):
        refused = submit(
            admin, "/admin/security", {"roles": ["artist"], "action": "save", **confirm}
        )
        assert refused.status_code == 200
        assert db.session.get(SecuritySetting, mfa.REQUIRED_ROLES_SETTING) is None

    response = change({"roles": ["artist"], "action": "save"})
    assert response.status_code == 302
    setting = db.session.get(SecuritySetting, mfa.REQUIRED_ROLES_SETTING)
    assert setting is not None and setting.value == ["artist"]
    (event,) = events("mfa.required_roles_changed", actor_id=admin_user.id)
    assert event.detail["old"] == {"roles": ["commissioner"], "source": "configuration"}
    assert event.detail["new"] == {"roles": ["artist"], "source": "admin"}
    # The stored choice overrides the configuration, both ways.
    assert login_as(Role.ARTIST).get("/").headers["Location"] == "/account/mfa"
    assert login_as(Role.COMMISSIONER).get("/").status_code == 200

    change({"action": "default"})
    assert db.session.get(SecuritySetting, mfa.REQUIRED_ROLES_SETTING) is None
    assert login_as(Role.ARTIST).get("/").status_code == 200
    assert login_as(Role.COMMISSIONER).get("/").headers["Location"] == "/account/mfa"
    last = events("mfa.required_roles_changed", actor_id=admin_user.id)[-1]
    assert last.detail["old"] == {"roles": ["artist"], "source": "admin"}
    assert last.detail["new"] == {"roles": ["commissioner"], "source": "configuration"}

    # Requiring it for link workers applies to them at once.
    change({"roles": ["admin", "link_worker"], "action": "save"})
    assert login_as(Role.LINK_WORKER).get("/").headers["Location"] == "/account/mfa"


def test_an_admin_without_two_step_verification_cannot_change_who_must_use_it(
    login_as: Callable[..., FlaskClient],
) -> None:
    admin = login_as(Role.ADMIN)
    page = admin.get("/admin/security").get_data(as_text=True)
    assert "Turn on two-step verification for your account" in page
    data = {"roles": ["artist"], "action": "save", "password": TEST_PASSWORD, "code": "123456"}
    refused = submit(admin, "/admin/security", data)
    assert refused.status_code == 200
    assert "Turn on two-step verification for your own account first" in refused.text
    assert db.session.get(SecuritySetting, mfa.REQUIRED_ROLES_SETTING) is None


def test_only_admins_see_the_security_page(login_as: Callable[..., FlaskClient]) -> None:
    for role in set(Role) - {Role.ADMIN}:
        assert login_as(role).get("/admin/security").status_code == 403


def test_the_default_requires_admins_commissioners_and_link_workers_in_production(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path}/config.sqlite"
    monkeypatch.delenv("REFERRALS_MFA_REQUIRED_ROLES", raising=False)
    monkeypatch.delenv("REFERRALS_ENV", raising=False)
    assert (
        create_app({"SECRET_KEY": "k" * 40, "SQLALCHEMY_DATABASE_URI": url}).config[
            "MFA_REQUIRED_ROLES"
        ]
        == []
    )
    monkeypatch.setenv("REFERRALS_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    production = create_app({"SQLALCHEMY_DATABASE_URI": url})
    assert production.config["MFA_REQUIRED_ROLES"] == ["admin", "commissioner", "link_worker"]
    monkeypatch.setenv("REFERRALS_MFA_REQUIRED_ROLES", '["admin"]')
    assert create_app({"SQLALCHEMY_DATABASE_URI": url}).config["MFA_REQUIRED_ROLES"] == ["admin"]
    monkeypatch.setenv("REFERRALS_MFA_REQUIRED_ROLES", '["admin", "superuser"]')
    with pytest.raises(RuntimeError, match="superuser"):
        create_app({"SQLALCHEMY_DATABASE_URI": url})
