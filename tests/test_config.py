"""Configuration layering, secrets, and the SQLite connection settings."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from referrals import create_app
from referrals.extensions import db


def test_production_refuses_to_start_without_a_secret(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("REFERRALS_ENV", "production")
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})


def test_production_cookies_are_secure(monkeypatch, tmp_path):
    monkeypatch.setenv("REFERRALS_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_development_secret_is_generated_once(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("REFERRALS_ENV", raising=False)
    from referrals.config import _development_secret

    first = _development_secret(tmp_path)
    assert len(first) >= 40
    assert _development_secret(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_environment_overrides_and_the_test_mapping_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("REFERRALS_LOGIN_MAX_FAILURES", "7")
    monkeypatch.setenv("REFERRALS_SERVICE_NAME", "Severnvale Arts")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    app = create_app({"SECRET_KEY": "k" * 40, "SERVICE_NAME": "From the test"})
    assert app.config["LOGIN_MAX_FAILURES"] == 7
    assert app.config["SERVICE_NAME"] == "From the test"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"


def test_sqlite_connections_enforce_foreign_keys_wal_and_busy_timeout(tmp_path):
    app = create_app(
        {"SECRET_KEY": "k" * 40, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/pragmas.sqlite"}
    )
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10_000
