"""Is the scheduler alive, and is any job failing? Written by the scheduler, read by health."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import delete, func, select

from referrals.db import utcnow
from referrals.extensions import db
from referrals.reports.models import JobRun
from referrals.scheduler.jobs import JOBS
from referrals.scheduler.models import SchedulerHeartbeat

HEARTBEAT_EVERY = timedelta(minutes=1)
# Rows of processes gone for this long are removed (each restart makes a new one).
FORGET_AFTER = timedelta(days=7)


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(app: Flask, process: str | None = None) -> None:
    """Record that this scheduler process is alive now."""
    with app.app_context():
        name = process or this_process()
        now = utcnow()
        row = db.session.get(SchedulerHeartbeat, name)
        if row is None:
            db.session.add(
                SchedulerHeartbeat(
                    process=name, host=socket.gethostname()[:100], started_at=now, beat_at=now
                )
            )
        else:
            row.beat_at = now
        db.session.execute(
            delete(SchedulerHeartbeat).where(SchedulerHeartbeat.beat_at < now - FORGET_AFTER)
        )
        db.session.commit()


def last_heartbeat() -> datetime | None:
    """When any scheduler process last beat (None if none ever has)."""
    return db.session.scalar(select(func.max(SchedulerHeartbeat.beat_at)))


def failing_jobs() -> list[str]:
    """Jobs whose latest finished run failed (a later success clears it)."""

    failing = []
    for job in JOBS:
        outcome = db.session.scalar(
            select(JobRun.outcome)
            .where(JobRun.job_id == job.id, JobRun.outcome.in_(("succeeded", "failed")))
            .order_by(JobRun.started_at.desc(), JobRun.id.desc())
            .limit(1)
        )
        if outcome == "failed":
            failing.append(job.id)
    return failing
