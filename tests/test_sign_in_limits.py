"""Sign-in limits that cannot be used against people: failures counted per account and client
address and per client address, request rates for the sign-in steps, public pages and the API.

Clients act from different addresses (`REMOTE_ADDR`), and time passes with time-machine
rather than by sleeping; the database throttle and the rate limiter both read that clock.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import LoginAttempt, Role
from referrals.db import utcnow
from referrals.extensions import db
from tests import factories
from tests.conftest import TEST_PASSWORD, database_url, make_app, sign_in
from tests.test_mfa import CODE_URL, Clock, clock, code_at, enrolled_user, enter_code, wrong_code

__all__ = ["clock"]  # a fixture, used by name

ATTACKER = "127.0.0.2"
OWNER = "127.0.0.3"
THROTTLED = "Too many failed attempts"
WRONG = "not-the-right-password"


def client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


@pytest.fixture()
def traveller() -> Iterator[Any]:
    """The clock, stopped at now; `traveller.shift(timedelta)` lets time pass."""
    with time_machine.travel(utcnow(), tick=False) as traveller:
        yield traveller


def fail(client: FlaskClient, email: str, times: int = 1) -> None:
    for _ in range(times):
        response = sign_in(client, email, WRONG)
        assert response.status_code == 200, "refused, not throttled, up to the limit"


def assert_throttled(response: Any) -> int:
    """A throttled sign-in: 429, the form with its message, and when to come back."""
    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)
    assert 'name="email"' in response.get_data(as_text=True)
    return int(response.headers["Retry-After"])


# The throttle in the database ----------------------------------------------------------------


def test_someone_elses_failures_never_lock_the_owner_out(app: Flask, traveller: Any) -> None:
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    attacker = client_at(app, ATTACKER)
    fail(attacker, admin.email, 10)
    # The attacker's address is held back, even with the right password...
    assert_throttled(sign_in(attacker, admin.email, TEST_PASSWORD))
    # ...and keeps being held back however long it keeps trying within the window.
    traveller.shift(timedelta(minutes=3))
    assert_throttled(sign_in(attacker, admin.email, WRONG))
    # The owner, from their own address, signs in at once.
    owner = client_at(app, OWNER)
    assert sign_in(owner, admin.email).headers["Location"] == "/"
    assert owner.get("/").status_code == 200


def test_the_back_off_slides_with_the_window_and_says_when_to_return(
    app: Flask, traveller: Any
) -> None:
    user = factories.make_user(Role.LINK_WORKER)
    db.session.commit()
    client = client_at(app, ATTACKER)
    fail(client, user.email, 5)
    traveller.shift(timedelta(minutes=2))
    fail(client, user.email, 5)
    wait = assert_throttled(sign_in(client, user.email))
    assert wait == 3 * 60  # the first five failures leave the window in 3 minutes
    throttled_tries = db.session.scalar(select(func.count()).select_from(LoginAttempt))
    assert throttled_tries == 10  # a refused try is not counted, so it does not push back

    traveller.shift(timedelta(minutes=3, seconds=1))
    # Five failures have aged out: five more tries before the limit again.
    fail(client, user.email, 4)
    assert sign_in(client, user.email).headers["Location"] == "/"


def test_one_address_cannot_spray_passwords_across_accounts(app: Flask, traveller: Any) -> None:
    users = [factories.make_user(Role.REFERRER) for _ in range(11)]
    db.session.commit()
    sprayer = client_at(app, ATTACKER)
    for user in users[:10]:
        fail(sprayer, user.email)  # one guess per account: no account reaches its limit
    # Ten accounts tried: any other, known or not, is refused without checking the password.
    assert_throttled(sign_in(sprayer, users[10].email))
    assert_throttled(sign_in(sprayer, "nobody@example.test", WRONG))
    assert db.session.scalar(
        select(AuditEvent.id).where(AuditEvent.action == "login.throttled").limit(1)
    )
    # Their owners, elsewhere, are unaffected.
    assert sign_in(client_at(app, OWNER), users[10].email).status_code == 302
    traveller.shift(timedelta(minutes=5, seconds=1))
    assert sign_in(sprayer, users[10].email).status_code == 302


def test_failures_from_one_address_are_limited_over_all_accounts(
    app: Flask, limits: Callable[..., None], traveller: Any
) -> None:
    limits(SIGN_IN="100 per minute")  # the database throttle, not the request rate, is tested
    users = [factories.make_user(Role.REFERRER) for _ in range(4)]
    db.session.commit()
    client = client_at(app, ATTACKER)
    for user in users[:3]:
        fail(client, user.email, 10)
    # Thirty failures from this address: a fourth account is refused too.
    wait = assert_throttled(sign_in(client, users[3].email))
    assert 0 < wait <= 5 * 60
    assert sign_in(client_at(app, OWNER), users[3].email).status_code == 302


def test_wrong_codes_count_per_account_from_any_address(
    app: Flask, clock: Clock, traveller: Any
) -> None:
    """Only someone with the password can make them, and a 6-digit code is short enough to
    guess from many addresses, so the code step is limited per account as well."""
    user, secret, _codes = enrolled_user()
    guesser = client_at(app, ATTACKER)
    assert sign_in(guesser, user.email).headers["Location"] == CODE_URL
    for _ in range(10):
        assert enter_code(guesser, wrong_code(secret, clock)).status_code == 200
    second = client_at(app, "127.0.0.4")
    assert sign_in(second, user.email).headers["Location"] == CODE_URL
    response = enter_code(second, code_at(secret, clock))
    assert response.status_code == 429
    assert THROTTLED in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0


def test_wrong_passwords_elsewhere_do_not_hold_back_the_owners_code(
    app: Flask, clock: Clock
) -> None:
    user, secret, _codes = enrolled_user()
    fail(client_at(app, ATTACKER), user.email, 10)
    owner = client_at(app, OWNER)
    assert sign_in(owner, user.email).headers["Location"] == CODE_URL
    assert enter_code(owner, code_at(secret, clock)).headers["Location"] == "/"


def test_behind_a_proxy_each_forwarded_client_counts_apart(
    database_root: Path, _migrated_app: Flask, app: Flask
) -> None:
    email = factories.make_user(Role.LINK_WORKER).email
    db.session.commit()
    db.session.close()  # the proxied app below is another engine on the same database
    proxied = make_app(database_url(database_root), PROXY_COUNT=1)
    attacker = proxied.test_client()
    attacker.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.9"
    owner = proxied.test_client()
    owner.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.7"
    with proxied.app_context():
        fail(attacker, email, 10)
        assert_throttled(sign_in(attacker, email))
        assert sign_in(owner, email).status_code == 302
        db.engine.dispose()
    addresses = set(db.session.scalars(select(LoginAttempt.ip_address)))
    assert addresses == {"203.0.113.9"}


# Request rates (Flask-Limiter) ---------------------------------------------------------------


@pytest.fixture()
def limits(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set request-rate limits for this test; the configuration is read at each request."""

    def _set(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setitem(app.config, f"RATELIMIT_{name}", value)

    return _set


def assert_too_many_page(response: Any) -> None:
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "<h1>Too many requests</h1>" in page
    assert "nhsuk-header" in page  # the service's own page, not Werkzeug's
    assert int(response.headers["Retry-After"]) > 0


def test_sign_in_posts_are_limited_per_address(
    app: Flask, limits: Callable[..., None], traveller: Any
) -> None:
    limits(SIGN_IN="3 per minute")
    user = factories.make_user(Role.ARTIST)
    db.session.commit()
    client = client_at(app, ATTACKER)
    for _ in range(3):
        assert sign_in(client, "someone@example.test", WRONG).status_code == 200
    assert_too_many_page(sign_in(client, user.email))
    assert client.get("/sign-in").status_code == 200  # reading the form is not a try
    assert sign_in(client_at(app, OWNER), user.email).status_code == 302
    traveller.shift(timedelta(minutes=1, seconds=1))
    assert sign_in(client, user.email).status_code == 302


def test_public_pages_are_limited_per_address_but_not_the_health_check(
    app: Flask, limits: Callable[..., None], traveller: Any
) -> None:
    limits(PUBLIC="2 per minute")
    client = client_at(app, ATTACKER)
    assert client.get("/accessibility").status_code == 200
    assert client.get("/privacy").status_code == 200
    assert_too_many_page(client.get("/accessibility"))
    assert client_at(app, OWNER).get("/privacy").status_code == 200
    for _ in range(5):
        assert client.get("/health").status_code == 200
    traveller.shift(timedelta(minutes=1, seconds=1))
    assert client.get("/accessibility").status_code == 200


def assert_too_many_problem(response: Any) -> None:
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.get_data(as_text=True))
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    assert 0 < int(response.headers["Retry-After"]) <= 61  # a minute, rounded up


def test_the_api_is_limited_per_token_wherever_it_is_used(
    app: Flask, api_client: Callable[..., Any], limits: Callable[..., None], traveller: Any
) -> None:
    limits(API_PER_CLIENT="3 per minute")
    client, first = api_client(Role.LINK_WORKER)
    _, second = api_client(Role.LINK_WORKER)
    client.environ_base["REMOTE_ADDR"] = ATTACKER
    for _ in range(3):
        assert client.get("/api/v1/referrals", headers=first).status_code == 200
    assert_too_many_problem(client.get("/api/v1/referrals", headers=first))
    assert_too_many_problem(client_at(app, OWNER).get("/api/v1/referrals", headers=first))
    # Another token from the same address has its own allowance.
    assert client.get("/api/v1/referrals", headers=second).status_code == 200
    traveller.shift(timedelta(minutes=1, seconds=1))
    assert client.get("/api/v1/referrals", headers=first).status_code == 200


def test_the_api_is_limited_per_address_made_up_tokens_included(
    app: Flask, api_client: Callable[..., Any], limits: Callable[..., None]
) -> None:
    limits(API_PER_ADDRESS="3 per minute")
    client, headers = api_client(Role.LINK_WORKER)
    client.environ_base["REMOTE_ADDR"] = ATTACKER
    for guess in ("aop_madeup1", "aop_madeup2"):
        assert client.get("/api/v1/referrals", headers=_bearer(guess)).status_code == 401
    assert client.get("/api/v1/referrals", headers=headers).status_code == 200
    assert_too_many_problem(client.get("/api/v1/referrals", headers=headers))
    assert_too_many_problem(client.get("/api/v1/referrals", headers=_bearer("aop_madeup3")))
    assert client_at(app, OWNER).get("/api/v1/referrals", headers=headers).status_code == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _redis_answers(uri: str) -> bool:
    try:
        return bool(redis.Redis.from_url(uri, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


REDIS = "redis://127.0.0.1:6379"


@pytest.mark.skipif(not _redis_answers(REDIS), reason="no Redis at 127.0.0.1:6379")
def test_with_redis_every_worker_shares_the_counts(database_root: Path, app: Flask) -> None:
    settings = {
        "RATELIMIT_STORAGE_URI": REDIS,
        "RATELIMIT_KEY_PREFIX": "test-" + secrets.token_hex(8),  # this run's keys alone
        "RATELIMIT_PUBLIC": "3 per minute",
    }
    workers = [make_app(database_url(database_root), **settings) for _ in range(2)]
    clients = [client_at(worker, ATTACKER) for worker in workers]
    answers = [clients[i % 2].get("/privacy").status_code for i in range(4)]
    assert answers == [200, 200, 200, 429]
