"""Backups: taken while referrals are being written, checked, restored into an empty database
and counted table by table; on SQLite with the online backup API, on PostgreSQL with pg_dump."""

from __future__ import annotations

import getpass
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, make_url, select, text

from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.backup import (
    BackupError,
    create_backup,
    database_counts,
    restore_backup,
    sqlite_counts,
    sqlite_integrity,
)
from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from tests import factories
from tests.conftest import make_app
from tests.intake_helpers import make_referral, nhs_numbers


def _dialect() -> str:
    return db.engine.dialect.name


class Writer:
    """A thread that keeps making referrals, each in its own transaction, until stopped."""

    def __init__(self, app: Flask, user_id: int, practice_id: int) -> None:
        self.app, self.user_id, self.practice_id = app, user_id, practice_id
        self.made = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        numbers = nhs_numbers()
        with self.app.app_context():
            try:
                while not self._stop.is_set():
                    user = db.session.get(User, self.user_id)
                    practice = db.session.get(Organisation, self.practice_id)
                    assert user is not None and practice is not None
                    make_referral(user, practice, nhs=next(numbers), today=date(2026, 5, 1))
                    db.session.commit()
                    self.made += 1
            except BaseException as error:
                self.errors.append(error)
            finally:
                db.session.remove()

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.made < count:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, f"only {self.made} referrals written"
            time.sleep(0.01)

    @contextmanager
    def running(self) -> Iterator[Writer]:
        db.session.commit()  # the test's own transaction must not hold the write lock
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=60)
        assert not self.errors, self.errors


def _writer(app: Flask) -> Writer:
    user = factories.make_user(Role.LINK_WORKER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    db.session.commit()
    return Writer(app, user.id, practice.id)


def _backup_while_writing(app: Flask, path: Path) -> Any:
    """Take backups while the writer is busy; return the last one's report."""
    with _writer(app).running() as writer:
        writer.wait_for(5)
        for _ in range(3):
            before = writer.made
            report = create_backup(path, force=True)
            db.session.commit()  # the audit entry for the backup
            writer.wait_for(before + 2)  # writes carried on throughout
        writer.wait_for(writer.made + 2)
    return report


def _without_restore_entry(counts: dict[str, int]) -> dict[str, int]:
    """Counts as they were restored, before the restore wrote its own audit entry."""
    return {**counts, "audit_event": counts["audit_event"] - 1}


# SQLite -------------------------------------------------------------------------------------


def test_sqlite_backup_while_writing_then_restore_into_an_empty_file(
    app: Flask, tmp_path: Path
) -> None:
    if _dialect() != "sqlite":
        pytest.skip("SQLite backup API")
    path = tmp_path / "referrals.backup.sqlite"
    report = _backup_while_writing(app, path)

    assert report.integrity == "ok"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert sqlite_integrity(copy) == "ok"
        assert sqlite_counts(copy) == report.counts
    # One consistent snapshot: every referral was written with its person in one transaction.
    assert report.counts["referral"] >= 5
    assert report.counts["patient"] == report.counts["referral"]
    assert report.counts["referral_transition"] == report.counts["referral"]

    target = tmp_path / "restored.sqlite"
    restored_app = make_app(f"sqlite:///{target}")
    with restored_app.app_context():
        restored = restore_backup(path)
        db.session.commit()
        assert restored.integrity == "ok"
        assert restored.counts == report.counts
        assert _without_restore_entry(database_counts()) == report.counts
        assert (
            db.session.scalar(select(func.count()).select_from(Referral))
            == (report.counts["referral"])
        )
        # The restored database is in use as it was: a person and their referral.
        patient = db.session.scalar(select(Patient).limit(1))
        assert patient is not None and patient.referrals
        # A second restore over it is refused unless forced.
        with pytest.raises(BackupError, match="already holds data"):
            restore_backup(path)
        forced = restore_backup(path, force=True)
        db.session.commit()
        assert forced.counts == report.counts
        db.session.remove()
        db.engine.dispose()


def test_restore_refuses_a_database_with_data_and_a_file_that_is_not_a_backup(
    app: Flask, tmp_path: Path
) -> None:
    if _dialect() != "sqlite":
        pytest.skip("SQLite backup API")
    factories.make_user(Role.ADMIN)
    db.session.commit()
    path = tmp_path / "b.sqlite"
    create_backup(path)
    db.session.commit()
    with pytest.raises(BackupError, match="already holds data"):
        restore_backup(path)
    with pytest.raises(BackupError, match="already exists"):
        create_backup(path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not an SQLite backup"):
        restore_backup(junk)


def test_backup_commands(app: Flask, runner: Any, tmp_path: Path) -> None:
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    suffix = "sqlite" if _dialect() == "sqlite" else "dump"
    path = tmp_path / f"cli.{suffix}"
    unnamed = runner.invoke(args=["backup", "create", "--output", str(path)])
    assert unnamed.exit_code == 2 and not path.exists()  # someone answerable must be named
    result = runner.invoke(args=["backup", "create", "--output", str(path), "--by", admin.email])
    assert result.exit_code == 0, result.output
    assert "Integrity check: ok" in result.output and "user_account" in result.output
    created = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "backup.created"))
    assert created is not None and created.actor_id == admin.id
    assert created.detail["os_user"] == getpass.getuser()
    password = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).password
    assert not password or str(password) not in result.output

    refused = runner.invoke(args=["backup", "restore", str(path), "--by", admin.email])
    assert refused.exit_code != 0 and "already holds data" in refused.output


# PostgreSQL ---------------------------------------------------------------------------------


@contextmanager
def scratch_database(app: Flask) -> Iterator[str]:
    """A new, empty database on the same server, dropped afterwards; yields its URL."""
    name = f"restore_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db.engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield db.engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgresql_dump_while_writing_then_restore_into_a_fresh_database(
    app: Flask, tmp_path: Path
) -> None:
    if _dialect() != "postgresql":
        pytest.skip("runs when the test database is PostgreSQL")
    path = tmp_path / "referrals.dump"
    report = _backup_while_writing(app, path)

    assert report.integrity == "ok"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes()[:5] == b"PGDMP"  # the custom format
    assert report.counts["referral"] >= 5
    assert report.counts["patient"] == report.counts["referral"]
    assert report.counts["referral_transition"] == report.counts["referral"]

    with scratch_database(app) as url:
        restored_app = make_app(url)
        with restored_app.app_context():
            try:
                restored = restore_backup(path)
                db.session.commit()
                assert restored.counts == report.counts
                assert _without_restore_entry(database_counts()) == report.counts
                patient = db.session.scalar(select(Patient).limit(1))
                assert patient is not None and patient.referrals
                with pytest.raises(BackupError, match="already holds data"):
                    restore_backup(path)
            finally:
                db.session.remove()
                db.engine.dispose()
