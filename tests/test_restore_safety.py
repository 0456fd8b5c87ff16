"""A restore that keeps its promises: erasures made since the backup are re-applied from the
ledger kept outside the database; a backup from an older migration revision is upgraded (and
sign-in works), one from a newer revision is refused with what to run; restored and new SQLite
files are readable by the service's user only. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role, User
from referrals.backup import (
    BackupError,
    _create_private,
    _postgresql_backup,
    code_head,
    create_backup,
    restore_backup,
)
from referrals.erasures import LEDGER_SUFFIX, Erasure, nhs_number_hash, read_ledger
from referrals.extensions import db
from referrals.intake.models import Patient
from referrals.retention import PSEUDONYMOUS_GIVEN_NAME
from tests import factories
from tests.conftest import make_app, sign_in
from tests.intake_helpers import make_referral
from tests.test_backup import scratch_database

OLDER = "0019"  # the revision before audit entries named their person


def _dialect() -> str:
    return db.engine.dialect.name


def _suffix() -> str:
    return "sqlite" if _dialect() == "sqlite" else "dump"


@contextmanager
def empty_database(app: Flask, tmp_path: Path, name: str) -> Iterator[str]:
    """The URL of a new, empty database beside the test's own (a file, or a PostgreSQL one)."""
    if _dialect() == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    else:
        with scratch_database(app) as url:
            yield url


@contextmanager
def other_app(url: str, ledger: Path) -> Iterator[Flask]:
    other = make_app(url, ERASURE_LEDGER_PATH=str(ledger))
    with other.app_context():
        try:
            yield other
        finally:
            db.session.remove()
            db.engine.dispose()


def _erased_in(person_id: int) -> bool:
    patient = db.session.get(Patient, person_id)
    assert patient is not None
    return patient.nhs_number is None and patient.given_name == PSEUDONYMOUS_GIVEN_NAME


def test_an_erasure_survives_restoring_a_backup_taken_before_it(
    app: Flask, runner: Any, tmp_path: Path
) -> None:
    admin = factories.make_user(Role.ADMIN)
    worker = factories.make_user(Role.LINK_WORKER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    erased = make_referral(worker, practice, nhs="9990101019", today=date(2026, 5, 1))
    kept = make_referral(worker, practice, nhs="9990101027", today=date(2026, 5, 1))
    db.session.commit()
    erased_id, kept_id, admin_id, by = erased.patient_id, kept.patient_id, admin.id, admin.email
    backup = tmp_path / f"before.{_suffix()}"
    create_backup(backup, actor=admin)
    db.session.commit()
    beside = backup.with_name(backup.name + LEDGER_SUFFIX)
    assert beside.is_file() and stat.S_IMODE(beside.stat().st_mode) == 0o600
    assert read_ledger(beside) == []  # nobody had been erased when it was taken

    result = runner.invoke(
        args=[
            "retention",
            "person",
            str(erased_id),
            "--erase",
            "--reason",
            "ER-1",
            "--by",
            admin.email,
        ]
    )
    assert result.exit_code == 0, result.output
    ledger = Path(app.config["ERASURE_LEDGER_PATH"])
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    [line] = ledger.read_text().splitlines()
    entry = json.loads(line)
    assert set(entry) == {"person_id", "nhs_number_hash", "erased_at"}
    assert entry["person_id"] == erased_id and "9990101019" not in line
    assert len(entry["nhs_number_hash"]) == 64

    with empty_database(app, tmp_path, "restored") as url, other_app(url, ledger):
        report = restore_backup(backup, by=by)
        db.session.commit()
        assert report.reapplied == [erased_id]
        assert _erased_in(erased_id)
        assert not _erased_in(kept_id)
        again = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient.erasure_reapplied")
        ).all()
        assert [(e.subject_person_id, e.detail["erased_at"]) for e in again] == [
            (erased_id, entry["erased_at"])
        ]
        restored = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "backup.restored")
        )
        assert restored is not None and restored.detail["erasures_reapplied"] == 1
        assert restored.actor_id == admin_id
        # A second restore of the same backup erases them again; the ledger is not doubled.
        report = restore_backup(backup, force=True, by=by)
        db.session.commit()
        assert report.reapplied == [erased_id] and _erased_in(erased_id)
        assert len(ledger.read_text().splitlines()) == 1
        if _dialect() == "sqlite":
            restored_file = Path(url.removeprefix("sqlite:///"))
            assert stat.S_IMODE(restored_file.stat().st_mode) == 0o600


def test_a_restore_on_a_new_machine_takes_the_erasures_from_beside_the_backup(
    app: Flask, tmp_path: Path
) -> None:
    admin = factories.make_user(Role.ADMIN)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    person = make_referral(admin, practice, nhs="9990101035", today=date(2026, 5, 1)).patient_id
    db.session.commit()
    older = tmp_path / f"older.{_suffix()}"
    create_backup(older)
    db.session.commit()
    from referrals.erasures import erase_and_remember

    patient = db.session.get(Patient, person)
    erase_and_remember(admin, patient, "ER-2")
    db.session.commit()
    newer = tmp_path / f"newer.{_suffix()}"
    create_backup(newer)
    db.session.commit()
    # The instance folder is lost: only the backups and the ledger beside the newer remain.
    shutil.copy(
        newer.with_name(newer.name + LEDGER_SUFFIX), older.with_name(older.name + LEDGER_SUFFIX)
    )
    new_ledger = tmp_path / "new-instance" / "erasures.jsonl"
    with empty_database(app, tmp_path, "new_machine") as url, other_app(url, new_ledger):
        report = restore_backup(older)
        db.session.commit()
        assert report.reapplied == [person] and _erased_in(person)
        assert len(read_ledger(new_ledger)) == 1


def _older_backup(app: Flask, tmp_path: Path, path: Path) -> str:
    """A backup of a database at revision OLDER holding an admin; returns the admin's email."""
    with empty_database(app, tmp_path, "older_source") as url, other_app(url, tmp_path / "l") as _:
        upgrade()
        admin = factories.make_user(Role.ADMIN)
        db.session.commit()
        email = admin.email
        db.session.remove()
        downgrade(revision=OLDER)
        if _dialect() == "sqlite":
            db.engine.dispose()  # the last connection closed folds the write-ahead log in
            shutil.copy(url.removeprefix("sqlite:///"), path)
        else:
            _create_private(path)
            _postgresql_backup(path)
    return email


def test_a_backup_from_an_older_revision_is_upgraded_after_restoring_and_sign_in_works(
    app: Flask, tmp_path: Path
) -> None:
    backup = tmp_path / f"old.{_suffix()}"
    email = _older_backup(app, tmp_path, backup)
    with empty_database(app, tmp_path, "upgraded") as url, other_app(url, tmp_path / "l") as other:
        report = restore_backup(backup, by=email)
        db.session.commit()
        assert report.upgraded
        assert db.session.scalar(text("SELECT version_num FROM alembic_version")) == code_head()
        restored = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "backup.restored")
        )
        assert restored is not None
        assert (restored.detail["revision"], restored.detail["upgraded_to"]) == (OLDER, code_head())
        user = db.session.scalar(select(User).where(User.email == email))
        assert user is not None
        response = sign_in(other.test_client(), email)
        assert response.status_code == 302, response.get_data(as_text=True)[:300]


def test_a_backup_from_a_newer_revision_is_refused_with_what_to_run(
    app: Flask, tmp_path: Path
) -> None:
    backup = tmp_path / f"new.{_suffix()}"
    with empty_database(app, tmp_path, "newer_source") as url, other_app(url, tmp_path / "l"):
        upgrade()
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        create_backup(backup)
    with empty_database(app, tmp_path, "refusing") as url, other_app(url, tmp_path / "l"):
        with pytest.raises(BackupError) as refused:
            restore_backup(backup)
        message = str(refused.value)
        assert "newer version of the service" in message and "9999" in message
        assert f"referrals backup restore {backup}" in message
        # Nothing was restored.
        assert "user_account" not in db.inspect(db.engine).get_table_names()


def test_a_new_sqlite_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite"
    with other_app(f"sqlite:///{path}", tmp_path / "l"), db.engine.connect() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.commit()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_database_put_back_by_other_means_is_erased_again_on_command(
    app: Flask, runner: Any
) -> None:
    admin = factories.make_user(Role.ADMIN)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    back = make_referral(admin, practice, nhs="9990101043", today=date(2026, 5, 1)).patient
    gone = make_referral(admin, practice, nhs="9990101051", today=date(2026, 5, 1)).patient_id
    db.session.commit()
    erased = runner.invoke(
        args=["retention", "person", str(gone), "--erase", "--reason", "ER-3", "--by", admin.email]
    )
    assert erased.exit_code == 0, erased.output
    # The database was put back from a copy made before `back` was erased, and someone who
    # was never in this copy: both are in the ledger.
    with Path(app.config["ERASURE_LEDGER_PATH"]).open("a") as ledger:
        for person, number in ((back.id, back.nhs_number), (99_999, "9990101078")):
            ledger.write(
                Erasure(person, nhs_number_hash(number), "2026-06-01T09:00:00+00:00").line()
            )
            ledger.write("\n")
    result = runner.invoke(args=["retention", "reapply-erasures", "--by", admin.email])
    assert result.exit_code == 0, result.output
    assert "1 erased again, 1 already erased, 1 not in this database" in result.output
    assert _erased_in(back.id) and _erased_in(gone)
    checked = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "erasures.reapplied"))
    assert checked is not None and checked.actor_id == admin.id
