"""The nightly backup job: skipped (saying why) with no folder set, files only their owner can
read, the newest N kept, and a restore drill: back up by the job, change data, restore, check."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, make_url, select, text

from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.backup import SCHEDULED_NAME
from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from referrals.reports.models import JobOutcome
from referrals.scheduler.jobs import BACKUP, JOBS_BY_ID, execute, period_key
from tests import factories
from tests.conftest import make_app
from tests.intake_helpers import make_referral, nhs_numbers

TODAY = date(2026, 12, 7)


def _suffix() -> str:
    return "sqlite" if db.engine.dialect.name == "sqlite" else "dump"


def test_the_backup_job_runs_nightly_once_a_day() -> None:
    job = JOBS_BY_ID[BACKUP]
    assert job.cron == {"hour": 1, "minute": 30}
    assert period_key(job, TODAY) == "2026-12-07"


def test_with_no_backup_folder_the_job_is_skipped_and_says_why(app: Flask) -> None:
    assert not app.config.get("BACKUP_DIR")
    db.session.commit()
    run = execute(app, BACKUP, TODAY)
    assert run.outcome == JobOutcome.SKIPPED
    assert "REFERRALS_BACKUP_DIR" in (run.detail or "")
    # Not a failure, so health does not report it; and a later run (once set) is not blocked.
    from referrals.scheduler.health import failing_jobs

    assert BACKUP not in failing_jobs()


def test_the_job_writes_a_private_backup_and_keeps_the_newest(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "backups"
    monkeypatch.setitem(app.config, "BACKUP_DIR", str(folder))
    monkeypatch.setitem(app.config, "BACKUP_KEEP", 3)
    factories.make_user(Role.ADMIN)
    db.session.commit()
    folder.mkdir(mode=0o700)
    older = [folder / f"referrals-202611{day:02d}-013000Z.{_suffix()}" for day in (1, 2, 3, 4)]
    for path in older:
        path.write_bytes(b"an older backup")
    other = folder / "notes.txt"  # not the job's: never removed
    other.write_text("kept")

    run = execute(app, BACKUP, TODAY)

    assert run.outcome == JobOutcome.SUCCEEDED, run.error
    assert "2 older backups removed" in (run.detail or "")
    made = sorted(p for p in folder.iterdir() if SCHEDULED_NAME.match(p.name))
    assert len(made) == 3
    new = made[-1]
    assert new not in older and new.name in (run.detail or "")
    assert made[:2] == older[2:]  # the two newest of the old ones, and the new one
    assert other.read_text() == "kept"
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert new.stat().st_size > 1000

    # The same day again is already done.
    again = execute(app, BACKUP, TODAY)
    assert again.outcome == JobOutcome.SKIPPED and again.detail == "already done"


@contextmanager
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind the suite runs on (SQLite file, or a new PostgreSQL
    database on the test server, dropped afterwards)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base or not base.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'drill.sqlite'}"
        return
    name = f"backup_drill_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
def test_restore_drill_back_up_by_the_job_change_data_restore_and_check(tmp_path: Path) -> None:
    folder = tmp_path / "backups"  # made by the job, for its owner only
    with fresh_database(tmp_path) as url:
        drill = make_app(url, BACKUP_DIR=str(folder), BACKUP_KEEP=14)
        with drill.app_context():
            try:
                upgrade()
                practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
                gp = factories.make_user(Role.REFERRER, organisation=practice)
                admin = factories.make_user(Role.ADMIN)  # answerable for the restore
                numbers = nhs_numbers()
                kept = [make_referral(gp, practice, nhs=next(numbers)) for _ in range(3)]
                kept_ids = sorted(r.id for r in kept)
                first_patient = kept[0].patient_id
                gp_id, practice_id = gp.id, practice.id
                names = {r.patient_id: r.patient.family_name for r in kept}
                admin_email = admin.email
                db.session.commit()

                run = execute(drill, BACKUP, TODAY)
                assert run.outcome == JobOutcome.SUCCEEDED, run.error
                (backup,) = [p for p in folder.iterdir() if SCHEDULED_NAME.match(p.name)]
                # The erasure ledger is copied beside it (see tests/test_restore_safety.py).
                assert {p.name for p in folder.iterdir()} == {
                    backup.name,
                    f"{backup.name}.erasures.jsonl",
                }
                assert stat.S_IMODE(folder.stat().st_mode) == 0o700
                assert stat.S_IMODE(backup.stat().st_mode) == 0o600

                # After the backup: a new referral, and a person's name changed.
                later = make_referral(gp, practice, nhs=next(numbers))
                later_id = later.id
                patient = db.session.get(Patient, first_patient)
                assert patient is not None
                patient.family_name = "Changed-After-Backup"
                db.session.commit()
                assert db.session.scalar(select(func.count()).select_from(Referral)) == 4

                db.session.remove()
                result = drill.test_cli_runner().invoke(
                    args=["backup", "restore", str(backup), "--force", "--by", admin_email]
                )
                assert result.exit_code == 0, result.output
                assert "every table holds the rows the backup holds" in result.output

                db.session.remove()
                assert sorted(db.session.scalars(select(Referral.id))) == kept_ids
                assert db.session.get(Referral, later_id) is None
                restored = {
                    p.id: p.family_name
                    for p in db.session.scalars(select(Patient).where(Patient.id.in_(names)))
                }
                assert restored == names
                # The restored database carries on: a new referral can be made in it.
                user = db.session.get(User, gp_id)
                surgery = db.session.get(Organisation, practice_id)
                assert user is not None and surgery is not None
                again = make_referral(user, surgery, nhs=next(numbers))
                db.session.commit()
                assert again.id is not None
            finally:
                db.session.remove()
                db.engine.dispose()
