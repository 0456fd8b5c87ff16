"""The job table: fixed ids, schedules and what each job does, and how a run claims its work.

Every job pushes its own app context, calls services, commits, and records its run in
`job_run`. A run claims its (job, period) by inserting its row: a unique index allows one
running or succeeded run per (job, period), so however many scheduler processes or hosts start
the same work, one does it and the others record that they skipped. While it works, a run
writes a heartbeat; `recover` marks a run whose heartbeat stopped (its process was killed, or
its host went away) as abandoned, and retries it and every failed run a few times.
"""

from __future__ import annotations

import logging
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from referrals import clock
from referrals.audit import AUDIT_JOB, move_spooled_in
from referrals.auth.models import Role, User
from referrals.backup import scheduled_backup
from referrals.courses.register_rules import REGISTER_EDIT_DAYS
from referrals.courses.reminders import remind_missing_registers
from referrals.courses.services import expire_offers
from referrals.db import utcnow
from referrals.extensions import db
from referrals.notifications.messages import deliver_due, job_failed
from referrals.notifications.services import notify
from referrals.reports.models import CLAIMING_OUTCOMES, JobOutcome, JobRun
from referrals.reports.services import (
    SchemeFigures,
    finalise_return,
    latest_closed_period,
    make_return,
    missing_returns,
    provisional_returns_closed,
)
from referrals.retention import (
    BATCH,
    pseudonymise_expired,
    purge_idempotent_requests,
    purge_outbound_messages,
)

log = logging.getLogger(__name__)

MONTHLY_RETURNS = "monthly-kpi-returns"
REGISTER_REMINDERS = "register-reminders"
RETENTION = "retention"
OUTBOUND = "outbound-messages"
BACKUP = "nightly-backup"
PLACE_OFFERS = "place-offers"
OUTBOUND_EVERY_MINUTES = 5
FAILED_KIND = "job_failed"

RETRY_DELAY = timedelta(minutes=15)
RETRY_LIMIT = 5  # attempts per (job, period), the first included


class JobFailed(Exception):
    """A job that did what it could and failed for some of its work (each listed)."""

    def __init__(self, summary: str, failures: list[str]) -> None:
        super().__init__(f"{summary}; " + "; ".join(failures))
        self.summary = summary
        self.failures = failures


class JobSkipped(Exception):
    """A job with nothing it may do (it is not configured): recorded as skipped, with why."""


@dataclass(frozen=True)
class Job:
    id: str
    description: str
    cron: dict[str, Any]  # APScheduler CronTrigger fields, in Europe/London
    run: Callable[[date], str]  # does the work for `today`; returns a summary


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _describe(error: BaseException) -> str:
    return "".join(traceback.format_exception_only(error)).strip()[:500]


def run_monthly_returns(today: date) -> str:
    """Make every missing return for months whose registers have closed (normally just last
    month's), and make final any provisional return among them.

    Each return is made and committed alone: one that fails is listed, and the others are
    still made; the failed run is retried, and makes only what is still missing.
    """

    made = finalised = 0
    failures: list[str] = []
    scheme: SchemeFigures = {}  # section A, once for each month whatever the contracts
    for contract_id, period in missing_returns(today):
        try:
            made += make_return(
                contract_id, period, today=today, job=MONTHLY_RETURNS, scheme=scheme
            ).created
        except Exception as error:
            db.session.rollback()
            log.exception("return for contract %s, %s failed", contract_id, period.key)
            failures.append(f"contract {contract_id}, {period.key}: {_describe(error)}")
    for contract_id, period in provisional_returns_closed(today):
        try:
            finalised += finalise_return(
                contract_id, period, today=today, job=MONTHLY_RETURNS, scheme=scheme
            )
        except Exception as error:
            db.session.rollback()
            log.exception("final return for contract %s, %s failed", contract_id, period.key)
            failures.append(f"contract {contract_id}, {period.key} (final): {_describe(error)}")
    summary = _plural(made, "return") + " made"
    if finalised:
        summary += f", {finalised} provisional made final"
    if failures:
        raise JobFailed(f"{summary}, {len(failures)} failed", failures)
    return summary


def run_register_reminders(today: date) -> str:
    """Remind artists of last week's sessions that still have no register."""

    return remind_missing_registers(today)


def run_retention(today: date) -> str:
    """Drop stale stored API answers and old email and text messages, then pseudonymise
    everyone past the retention period.

    People are pseudonymised in batches, each committed, so a long first run never holds the
    database's write lock for long; a run cut short simply continues next time.
    """

    purged = purge_idempotent_requests()
    messages = purge_outbound_messages()
    db.session.commit()
    pseudonymised = 0
    while batch := pseudonymise_expired(today, limit=BATCH):
        pseudonymised += batch
        db.session.commit()
    return (
        f"{pseudonymised} {'person' if pseudonymised == 1 else 'people'} pseudonymised, "
        f"{purged} stored API answer{'s' if purged != 1 else ''} removed, "
        f"{_plural(messages, 'old message')} removed"
    )


def run_place_offers(today: date) -> str:
    """Pass on every waiting-list place not accepted by its date to the next person waiting,
    who is offered it and told. One run a day (its claim); each offer passed on once."""

    passed = expire_offers(today)
    db.session.commit()
    return f"{_plural(passed, 'place')} passed on"


def run_outbound(today: date) -> str:
    """Queue what the clock has made due (reminders, overdue registers), then send every
    email and text message due. Each message is claimed on its own, so this is safe to run
    in several processes at once."""

    return deliver_due(today)


def run_backup(today: date) -> str:
    """Back up the database into BACKUP_DIR (SQLite online backup, or pg_dump), then keep only
    the newest BACKUP_KEEP scheduled backups there. Skipped, saying so, when BACKUP_DIR is unset."""
    folder = current_app.config.get("BACKUP_DIR")
    if not folder:
        raise JobSkipped("not configured: set REFERRALS_BACKUP_DIR to a folder for backups")
    path, removed = scheduled_backup(Path(folder), int(current_app.config["BACKUP_KEEP"]))
    db.session.commit()  # the audit entry for the backup
    return f"backed up to {path.name}; {_plural(len(removed), 'older backup')} removed"


JOBS: tuple[Job, ...] = (
    Job(
        MONTHLY_RETURNS,
        "Monthly KPI returns for every contract active in the month, once its registers close",
        # The day after the last day a register for the month may change: the 8th.
        {"day": REGISTER_EDIT_DAYS + 1, "hour": 2, "minute": 30},
        run_monthly_returns,
    ),
    Job(
        REGISTER_REMINDERS,
        "Weekly reminder to artists of sessions with no register",
        {"day_of_week": "mon", "hour": 8, "minute": 0},
        run_register_reminders,
    ),
    Job(
        RETENTION,
        "Pseudonymise people whose records are past the retention period",
        {"hour": 3, "minute": 15},
        run_retention,
    ),
    Job(
        PLACE_OFFERS,
        "Pass on waiting-list places not accepted by their date to the next person waiting",
        # After midnight: a place is held to the end of its last day. Before the 10:00
        # messages, so the next person hears the same morning.
        {"hour": 0, "minute": 20},
        run_place_offers,
    ),
    Job(
        OUTBOUND,
        "Send due email and text messages (reminders, confirmations, messages back)",
        {"minute": f"*/{OUTBOUND_EVERY_MINUTES}"},
        run_outbound,
    ),
    Job(
        BACKUP,
        "Back up the database to the backup folder, keeping the newest copies",
        {"hour": 1, "minute": 30},
        run_backup,
    ),
)
JOBS_BY_ID = {job.id: job for job in JOBS}


def period_key(job: Job, today: date) -> str:
    """What a run is for: the latest month whose registers have closed, the ISO week, the
    five minutes (sending messages), or the day. A run is done once per (job, period)."""
    if job.id == MONTHLY_RETURNS:
        return latest_closed_period(today).key
    if job.id == REGISTER_REMINDERS:
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    if job.id == OUTBOUND:
        now = clock.now()
        slot = now.minute - now.minute % OUTBOUND_EVERY_MINUTES
        return f"{today.isoformat()}T{now.hour:02d}:{slot:02d}"
    return today.isoformat()


def _new_run(job: Job, key: str, day: date, **fields: Any) -> JobRun:
    return JobRun(
        job_id=job.id,
        period_key=key,
        host=socket.gethostname(),
        for_date=day,
        started_at=utcnow(),
        **fields,
    )


def _claim(job: Job, key: str, day: date) -> JobRun | None:
    """This process's running row for (job, period), or None when another run holds it."""
    run = _new_run(job, key, day, outcome=JobOutcome.RUNNING)
    run.heartbeat_at = run.started_at
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return run


def _skip(job: Job, key: str, day: date) -> JobRun:
    holder = db.session.scalar(
        select(JobRun).where(
            JobRun.job_id == job.id,
            JobRun.period_key == key,
            JobRun.outcome.in_(CLAIMING_OUTCOMES),
        )
    )
    if holder is None or holder.outcome == JobOutcome.SUCCEEDED:
        detail = "already done"
    else:
        detail = f"running on {holder.host or 'another host'}"
    run = _new_run(job, key, day, outcome=JobOutcome.SKIPPED, detail=detail)
    run.finished_at = run.started_at
    db.session.add(run)
    db.session.commit()
    return _detached(run)


class Heartbeat:
    """Writes a running job's sign of life on its own connection until the job ends."""

    def __init__(self, app: Flask, run_id: int) -> None:
        self.app = app
        self.run_id = run_id
        self.interval = app.config["JOB_HEARTBEAT_INTERVAL"]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def beat(self) -> None:
        with self.app.app_context(), db.engine.begin() as connection:
            connection.execute(
                update(JobRun)
                .where(JobRun.id == self.run_id, JobRun.outcome == JobOutcome.RUNNING)
                .values(heartbeat_at=utcnow())
            )

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval.total_seconds()):
            try:
                self.beat()
            except Exception:  # a missed beat is harmless until the run looks stale
                log.warning("heartbeat for job run %s failed", self.run_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()


def notify_admins_of_failure(run: JobRun, description: str) -> None:
    """Every active admin is told in-app that a job failed, and where to see it, and by email
    unless they chose not to be."""

    admins = db.session.scalars(
        select(User).where(User.role == Role.ADMIN, User.active.is_(True)).order_by(User.id)
    ).all()
    job_failed(admins, run_id=run.id, job=description, period=run.period_key)
    for admin in admins:
        notify(
            user=admin,
            text=f"The job “{description}” failed for {run.period_key}: {run.error[:300]}",
            link="/admin/jobs",
            kind=FAILED_KIND,
        )


def execute(app: Flask, job_id: str, today: date | None = None) -> JobRun:
    """Run one job now in its own app context, unless another run holds its (job, period).

    Returns the run's record: succeeded, failed (with its error; `recover` retries it) or
    skipped. Raises only when the run cannot even be recorded (the database is unavailable).
    """
    job = JOBS_BY_ID[job_id]
    with app.app_context():
        setattr(g, AUDIT_JOB, job.id)
        day = today or clock.today()
        key = period_key(job, day)
        run = _claim(job, key, day)
        if run is None:
            return _skip(job, key, day)
        run_id = run.id
        summary, error, skipped = "", "", False
        with Heartbeat(app, run_id):
            try:
                summary = job.run(day)
            except JobSkipped as reason:
                summary, skipped = str(reason), True
            except JobFailed as failed:
                summary, error = failed.summary, "\n".join(failed.failures)[:2000]
            except Exception as failed:
                error = _describe(failed)[:2000]
                log.exception("job %s failed", job.id)
        db.session.rollback()
        finished = db.session.get(JobRun, run_id)
        assert finished is not None
        finished.outcome = (
            JobOutcome.FAILED if error else JobOutcome.SKIPPED if skipped else JobOutcome.SUCCEEDED
        )
        finished.detail, finished.error, finished.finished_at = summary, error, utcnow()
        if error:
            log.warning("job %s for %s failed: %s", job.id, key, error)
            notify_admins_of_failure(finished, job.description)
        db.session.commit()
        _move_spooled_access_entries_in()
        return _detached(finished)


def _move_spooled_access_entries_in() -> None:
    """Access entries pages kept in the spool while the database was busy are moved in after
    every job, should no page have done so meanwhile (see `referrals.audit_spool`)."""
    try:
        moved = move_spooled_in()
    except Exception:  # retried after the next job; the entries stay in the spool
        log.warning("spooled access entries not moved in", exc_info=True)
        return
    if moved:
        log.info("%d spooled access entries moved in", moved)


def _detached(run: JobRun) -> JobRun:
    """The run's row, loaded and detached, so callers can read it after the context closes."""
    db.session.refresh(run)
    db.session.expunge(run)
    return run


def _abandon_stale(now: datetime) -> list[tuple[str, date]]:
    """Mark running runs with no heartbeat for too long as abandoned; their (job, day)."""
    stale_before = now - current_app.config["JOB_STALE_AFTER"]
    last_sign = func.coalesce(JobRun.heartbeat_at, JobRun.started_at)
    stale = db.session.scalars(
        select(JobRun).where(JobRun.outcome == JobOutcome.RUNNING, last_sign < stale_before)
    ).all()
    abandoned = []
    for run in stale:
        # Only one recoverer wins each row; the others see it already changed.
        result = db.session.execute(
            update(JobRun)
            .where(
                JobRun.id == run.id,
                JobRun.outcome == JobOutcome.RUNNING,
                last_sign < stale_before,
            )
            .values(
                outcome=JobOutcome.ABANDONED,
                finished_at=now,
                error=(
                    f"No sign of life from {run.host or 'its host'} for over "
                    f"{current_app.config['JOB_STALE_AFTER']}: its process stopped"
                ),
            )
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if getattr(result, "rowcount", 0) == 1 and run.job_id in JOBS_BY_ID:
            db.session.refresh(run)
            notify_admins_of_failure(run, JOBS_BY_ID[run.job_id].description)
            db.session.commit()
            if run.for_date is not None:
                abandoned.append((run.job_id, run.for_date))
    return abandoned


def _failed_to_retry(now: datetime) -> list[tuple[str, date]]:
    """(job, day) of each period whose last attempt failed or was abandoned long enough ago,
    with attempts left and no run holding its claim."""
    holder = aliased(JobRun)
    claimed = (
        select(holder.id)
        .where(
            holder.job_id == JobRun.job_id,
            holder.period_key == JobRun.period_key,
            holder.outcome.in_(CLAIMING_OUTCOMES),
        )
        .exists()
    )
    rows = db.session.execute(
        select(JobRun.job_id, func.max(JobRun.for_date))
        .where(
            JobRun.outcome.in_((JobOutcome.FAILED, JobOutcome.ABANDONED)),
            JobRun.for_date.is_not(None),
            ~claimed,
        )
        .group_by(JobRun.job_id, JobRun.period_key)
        .having(func.count() < RETRY_LIMIT, func.max(JobRun.finished_at) <= now - RETRY_DELAY)
        .order_by(JobRun.job_id, func.max(JobRun.for_date))
    ).all()
    return [(job_id, day) for job_id, day in rows if job_id in JOBS_BY_ID and day is not None]


def recover(app: Flask) -> list[JobRun]:
    """Retry runs whose process died, then failed runs due a retry; the runs this made."""
    with app.app_context():
        now = utcnow()
        due = _abandon_stale(now)
        due += [item for item in _failed_to_retry(now) if item not in due]
    return [execute(app, job_id, day) for job_id, day in due]


def recent_runs(limit: int = 50) -> list[JobRun]:
    return list(
        db.session.scalars(
            select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(limit)
        )
    )
