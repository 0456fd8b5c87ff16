"""The scheduler process: APScheduler 3 in the foreground, started by `flask scheduler run`.

It is a separate process, never the web app or its workers (which would run each job once per
worker). Misfires are coalesced with a week's grace so downtime never silently drops a month,
and on start it catches up: every missing return for finished months is made at once. A
failed run is recorded and retried a few times; the next catch-up also covers it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from referrals.scheduler.health import HEARTBEAT_EVERY, beat, this_process
from referrals.scheduler.jobs import (
    JOBS,
    LONDON,
    MONTHLY_RETURNS,
    RETRY_DELAY,
    RETRY_LIMIT,
    execute,
)

log = logging.getLogger(__name__)
WEEK_SECONDS = 7 * 24 * 3600


def build_scheduler(
    app: Flask, scheduler_class: type[BaseScheduler] = BlockingScheduler
) -> BaseScheduler:
    scheduler = scheduler_class(
        timezone=LONDON,
        job_defaults={"coalesce": True, "misfire_grace_time": WEEK_SECONDS, "max_instances": 1},
    )
    for job in JOBS:
        scheduler.add_job(
            execute,
            CronTrigger(timezone=LONDON, **job.cron),
            args=[app, job.id],
            id=job.id,
            name=job.description,
            replace_existing=True,
        )
    # A sign of life every minute for /health/ready; not a job run, so not in job_run.
    scheduler.add_job(
        beat,
        IntervalTrigger(seconds=HEARTBEAT_EVERY.total_seconds()),
        args=[app, this_process()],
        id="heartbeat",
        name="Scheduler heartbeat",
        replace_existing=True,
        misfire_grace_time=None,
    )
    attempts: dict[str, int] = {}

    def retry_failed(event: JobExecutionEvent) -> None:
        if event.job_id == "heartbeat":  # the next beat is a minute away
            return
        base = event.job_id.split(":retry", 1)[0]
        attempts[base] = attempts.get(base, 0) + 1
        if attempts[base] > RETRY_LIMIT:
            log.error("job %s failed %d times; waiting for its next schedule", base, RETRY_LIMIT)
            attempts[base] = 0
            return
        run_at = datetime.now(LONDON) + RETRY_DELAY
        scheduler.add_job(
            execute,
            DateTrigger(run_date=run_at),
            args=[app, base],
            id=f"{base}:retry",
            replace_existing=True,
        )

    scheduler.add_listener(retry_failed, EVENT_JOB_ERROR)
    return scheduler


def catch_up(app: Flask) -> None:
    """Make every missing return now (after downtime, or on first start)."""
    try:
        execute(app, MONTHLY_RETURNS)
    except Exception:  # recorded in job_run; the schedule retries
        log.exception("catch-up failed")


def run_forever(app: Flask) -> None:
    scheduler = build_scheduler(app)
    beat(app)
    catch_up(app)
    scheduler.start()
