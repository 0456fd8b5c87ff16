"""Readiness checks and the running release, for /health/ready and /version."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import text

from referrals.db import utcnow
from referrals.extensions import db
from referrals.scheduler.health import failing_jobs, last_heartbeat

DISTRIBUTION = "arts-referrals"


def release() -> str:
    """The installed package's version (pyproject.toml), or "unknown" when not installed."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


@cache
def _migration_heads(directory: str) -> tuple[str, ...]:
    return tuple(sorted(ScriptDirectory(directory).get_heads()))


def migration_heads() -> tuple[str, ...]:
    """The newest migration revisions this code ships (read from disk once per process)."""
    return _migration_heads(current_app.extensions["migrate"].directory)


def database_revisions() -> tuple[str, ...]:
    """The migration revisions the database is at."""
    with db.engine.connect() as connection:
        return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def readiness() -> tuple[bool, dict[str, Any]]:
    """Each check's result; ready only if every check passes."""

    checks: dict[str, Any] = {}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # the database is the one thing that must answer
        db.session.rollback()
        checks["database"] = {"ok": False}
        return False, checks
    checks["database"] = {"ok": True}
    at, expected = database_revisions(), migration_heads()
    checks["migrations"] = {"ok": at == expected, "database": list(at), "code": list(expected)}
    max_age = timedelta(seconds=current_app.config["SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS"])
    beat_at = last_heartbeat()
    checks["scheduler"] = {
        "ok": beat_at is not None and utcnow() - beat_at <= max_age,
        "last_heartbeat": beat_at.isoformat() if beat_at else None,
    }
    failing = failing_jobs()
    checks["jobs"] = {"ok": not failing, "failing": failing}
    return all(check["ok"] for check in checks.values()), checks
