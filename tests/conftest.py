"""Fixtures: one migrated database per run, emptied after every test; real CSRF; real sign-in.

Set TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run the
whole suite on PostgreSQL; otherwise it runs on a SQLite file in a temporary folder.
"""

from __future__ import annotations

import contextvars
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from flask_migrate import upgrade
from hypothesis import settings
from sqlalchemy import text

from referrals import create_app
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.extensions import db
from referrals.public.catalogue import CACHE_KEY as PUBLIC_CACHE_KEY
from referrals.ratelimits import limiter_for
from tests import factories

TEST_PASSWORD = factories.TEST_PASSWORD

# Property tests judge behaviour, not speed: Hypothesis's default deadline per example is a
# wall-clock assert, and fails on a busy machine. Timings belong in bench/.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")

# Debian's Chromium, which the browser journeys in tests/browser drive (see its conftest).
CHROMIUM = Path("/usr/bin/chromium")


def pytest_report_header(config: pytest.Config) -> str:
    """Say at the top of every run whether the browser journeys will run."""
    if CHROMIUM.exists():
        return f"browser journeys: run in Chromium at {CHROMIUM}"
    return (
        f"browser journeys: SKIPPED, Chromium not found at {CHROMIUM} "
        "(install it with: apt-get install -y chromium)"
    )


def database_url(tmp_root: Path) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_root / 'test.sqlite'}"


# Never the instance folder's erasure ledger; each test's `app` has its own (see `app`).
_LEDGERS = Path(tempfile.mkdtemp(prefix="erasure-ledgers-"))


def test_config(url: str, **overrides: Any) -> dict[str, Any]:
    config = {
        "ERASURE_LEDGER_PATH": str(_LEDGERS / "erasures.jsonl"),
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": url,
        "SERVER_NAME": "localhost",
        # The OWASP minimum for Argon2id (m=19 MiB, t=2): compliant, and quick enough for tests.
        "ARGON2_MEMORY_COST_KIB": 19 * 1024,
        "ARGON2_TIME_COST": 2,
        "ARGON2_PARALLELISM": 1,
        # Every request sees the directory as it is now; tests of the cache set their own.
        "PUBLIC_CACHE_SECONDS": 0,
        # Never the instance folder's spool of access entries.
        "AUDIT_SPOOL_DIR": str(_LEDGERS / "audit-spool"),
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="session")
def database_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("db")


class IsolatedClient(FlaskClient):
    """Each request runs in its own app context, as in production.

    The tests keep an app context open for factories and assertions; Flask would otherwise
    reuse it for requests, sharing `g` (CSRF tokens, the signed-in user) between them. The
    test's own work is committed first, as set-up data would be.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            db.session.commit()
        return contextvars.Context().run(super().open, *args, **kwargs)


def make_app(url: str, **overrides: Any) -> Flask:
    app = create_app(test_config(url, **overrides))
    app.test_client_class = IsolatedClient
    return app


@pytest.fixture(scope="session")
def _migrated_app(database_root: Path) -> Iterator[Flask]:
    app = make_app(database_url(database_root))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            # A fresh schema every run: whatever an earlier run left behind is dropped.
            with db.engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE"))
                connection.execute(text("CREATE SCHEMA public"))
        upgrade()
    yield app


# The day the demo scheme is seeded for the tests that read it whole.
DEMO_TODAY = date(2026, 3, 16)


@pytest.fixture(scope="module")
def seeded_demo(_migrated_app: Flask) -> Iterator[None]:
    """The demo seeded once for a module, and the scheduler's monthly job caught up."""
    from referrals.scheduler.jobs import run_monthly_returns
    from referrals.seeding.demo import seed_demo

    with _migrated_app.app_context():
        seed_demo(today=DEMO_TODAY)
        db.session.commit()
        run_monthly_returns(DEMO_TODAY)
        db.session.commit()
        yield
        db.session.remove()
        _empty_all_tables()


def _empty_all_tables() -> None:
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())
            if connection.execute(
                text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
            ).first():
                connection.execute(text("DELETE FROM sqlite_sequence"))


@pytest.fixture()
def app(_migrated_app: Flask, tmp_path: Path) -> Iterator[Flask]:
    _migrated_app.config["ERASURE_LEDGER_PATH"] = str(tmp_path / "erasures.jsonl")
    with _migrated_app.app_context():
        yield _migrated_app
        db.session.remove()
        _empty_all_tables()
        limiter_for(_migrated_app).reset()  # request counts, like the tables, start afresh
        _migrated_app.extensions.pop(PUBLIC_CACHE_KEY, None)  # and the published directory


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_token(client: FlaskClient, url: str) -> str:
    """Read the CSRF token from a page, as a browser would."""
    response = client.get(url)
    match = _CSRF.search(response.get_data(as_text=True))
    assert match, f"no CSRF token on {url} (status {response.status_code})"
    return match.group(1)


def submit(
    client: FlaskClient,
    url: str,
    data: dict[str, Any] | None = None,
    *,
    page: str | None = None,
    **kwargs: Any,
) -> Any:
    """Post a form with the CSRF token read from `page` (default: the form's own URL)."""
    payload = dict(data or {})
    payload["csrf_token"] = csrf_token(client, page or url)
    return client.post(url, data=payload, **kwargs)


def sign_in(client: FlaskClient, email: str, password: str = TEST_PASSWORD) -> Any:
    return submit(client, "/sign-in", {"email": email, "password": password})


@pytest.fixture()
def login_as(app: Flask) -> Callable[..., FlaskClient]:
    """`login_as(role)` or `login_as(user)`: a new client signed in through the real form."""

    def _login(who: Role | str | User, **user_kwargs: Any) -> FlaskClient:
        user = who if isinstance(who, User) else factories.make_user(Role(who), **user_kwargs)
        db.session.commit()
        client = app.test_client()
        response = sign_in(client, user.email)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        client.user = user  # type: ignore[attr-defined]
        return client

    return _login


# Signed-in clients for the roles most tests act as; a module may define its own instead.


@pytest.fixture()
def admin(login_as: Callable[..., FlaskClient]) -> FlaskClient:
    return login_as(Role.ADMIN)


@pytest.fixture()
def link_worker(login_as: Callable[..., FlaskClient]) -> FlaskClient:
    return login_as(Role.LINK_WORKER)


@pytest.fixture()
def practice(app: Flask) -> Organisation:
    return factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Abbey Road Surgery")


@pytest.fixture()
def gp(login_as: Callable[..., FlaskClient], practice: Organisation) -> FlaskClient:
    """A referrer at `practice`."""
    return login_as(factories.make_user(Role.REFERRER, organisation=practice))


@pytest.fixture()
def api_client(app: Flask) -> Callable[..., Any]:
    """`api_client(role or user)` -> (client, headers) with a fresh bearer token."""
    from referrals.auth.services import issue_api_token

    def _make(who: Role | str | User, **user_kwargs: Any) -> tuple[FlaskClient, dict[str, str]]:
        user = who if isinstance(who, User) else factories.make_user(Role(who), **user_kwargs)
        token = issue_api_token(None, user)
        db.session.commit()
        return app.test_client(), {"Authorization": f"Bearer {token}"}

    return _make
