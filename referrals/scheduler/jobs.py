"""The job table: fixed ids, schedules and what each job does.

Every job pushes its own app context, calls services, commits, and records its run in
`job_run`. Running a job twice is harmless: returns are made once per (scope, period), and a
reminder is sent once per week.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select

from referrals.db import utcnow
from referrals.extensions import db
from referrals.reports.models import JobRun
from referrals.reports.periods import Period

log = logging.getLogger(__name__)
LONDON = ZoneInfo("Europe/London")

MONTHLY_RETURNS = "monthly-kpi-returns"
REGISTER_REMINDERS = "register-reminders"
RETENTION = "retention"


def today_in_london() -> date:
    return datetime.now(LONDON).date()


@dataclass(frozen=True)
class Job:
    id: str
    description: str
    cron: dict[str, Any]  # APScheduler CronTrigger fields, in Europe/London
    run: Callable[[date], str]  # does the work for `today`; returns a summary
    # Runs whose work must not repeat (a reminder) are skipped once one has succeeded for the
    # period; others (returns) are safe to repeat and catch up whatever is missing.
    once_per_period: bool = False


def run_monthly_returns(today: date) -> str:
    """Make every missing return for finished months (normally just last month's)."""
    from referrals.reports.services import make_return, missing_returns

    made = 0
    for contract_id, period in missing_returns(today):
        if make_return(contract_id, period, today=today, job=MONTHLY_RETURNS).created:
            made += 1
    return f"{made} return{'s' if made != 1 else ''} made"


def run_register_reminders(today: date) -> str:
    """Remind artists of last week's sessions that still have no register."""
    from referrals.courses.reminders import remind_missing_registers

    return remind_missing_registers(today)


def run_retention(today: date) -> str:
    """Drop stale stored API answers, then anonymise everyone past the retention period.

    People are anonymised in batches, each committed, so a long first run never holds the
    database's write lock for long; a run cut short simply continues next time.
    """
    from referrals.retention import BATCH, anonymise_expired, purge_idempotent_requests

    purged = purge_idempotent_requests()
    db.session.commit()
    anonymised = 0
    while batch := anonymise_expired(today, limit=BATCH):
        anonymised += batch
        db.session.commit()
    return (
        f"{anonymised} {'person' if anonymised == 1 else 'people'} anonymised, "
        f"{purged} stored API answer{'s' if purged != 1 else ''} removed"
    )


JOBS: tuple[Job, ...] = (
    Job(
        MONTHLY_RETURNS,
        "Monthly KPI returns for every contract active in the month just ended",
        {"day": 1, "hour": 2, "minute": 30},
        run_monthly_returns,
    ),
    Job(
        REGISTER_REMINDERS,
        "Weekly reminder to artists of sessions with no register",
        {"day_of_week": "mon", "hour": 8, "minute": 0},
        run_register_reminders,
        once_per_period=True,
    ),
    Job(
        RETENTION,
        "Anonymise people whose referrals all closed longer ago than the retention period",
        {"hour": 3, "minute": 15},
        run_retention,
    ),
)
JOBS_BY_ID = {job.id: job for job in JOBS}


def period_key(job: Job, today: date) -> str:
    """What a run is for: the month just ended, the ISO week, or the day."""
    if job.id == MONTHLY_RETURNS:
        return Period.containing(today).previous().key
    if job.id == REGISTER_REMINDERS:
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    return today.isoformat()


def execute(app: Flask, job_id: str, today: date | None = None) -> JobRun:
    """Run one job now in its own app context, recording the run and any failure."""
    job = JOBS_BY_ID[job_id]
    with app.app_context():
        day = today or today_in_london()
        key = period_key(job, day)
        run = JobRun(job_id=job.id, period_key=key, host=socket.gethostname())
        if job.once_per_period and db.session.scalar(
            select(JobRun.id)
            .where(JobRun.job_id == job.id, JobRun.period_key == key, JobRun.outcome == "succeeded")
            .limit(1)
        ):
            run.outcome, run.detail, run.finished_at = "skipped", "already done", utcnow()
            db.session.add(run)
            db.session.commit()
            return _detached(run)
        db.session.add(run)
        db.session.commit()
        run_id = run.id
        try:
            summary = job.run(day)
        except Exception as error:  # recorded, then retried by the runner
            db.session.rollback()
            failed = db.session.get(JobRun, run_id)
            assert failed is not None
            failed.outcome = "failed"
            failed.error = "".join(traceback.format_exception_only(error)).strip()[:2000]
            failed.finished_at = utcnow()
            db.session.commit()
            log.warning("job %s failed: %s", job.id, type(error).__name__)
            raise
        finished = db.session.get(JobRun, run_id)
        assert finished is not None
        finished.outcome = "succeeded"
        finished.detail = summary
        finished.finished_at = utcnow()
        db.session.commit()
        return _detached(finished)


def _detached(run: JobRun) -> JobRun:
    """The run's row, loaded and detached, so callers can read it after the context closes."""
    db.session.refresh(run)
    db.session.expunge(run)
    return run


def recent_runs(limit: int = 50) -> list[JobRun]:
    return list(
        db.session.scalars(
            select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
        )
    )


RETRY_DELAY = timedelta(minutes=15)
RETRY_LIMIT = 5
