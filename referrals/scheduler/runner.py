"""The scheduler process: APScheduler 3 in the foreground, started by `flask scheduler run`.

It is a separate process, never the web app or its workers (which would run each job once per
worker). Misfires are coalesced with a week's grace so downtime never silently drops a month.
On start it catches up (every missing return for closed months), trying again until the
database answers; every few minutes it recovers runs whose process died and retries failed
runs. Retries live in the database, not in this process, so any scheduler may take them up.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from referrals import clock
from referrals.scheduler.health import HEARTBEAT_EVERY, beat, this_process
from referrals.scheduler.jobs import JOBS, MONTHLY_RETURNS, execute, recover

log = logging.getLogger(__name__)
WEEK_SECONDS = 7 * 24 * 3600
RECOVERY = "recover-runs"
RECOVERY_EVERY = timedelta(minutes=5)
CATCH_UP = "catch-up"
CATCH_UP_RETRY = timedelta(minutes=1)


def _recover(app: Flask) -> None:
    try:
        recover(app)
    except Exception:  # the database may be away; the next round tries again
        log.exception("recovering job runs failed")


def build_scheduler(
    app: Flask, scheduler_class: type[BaseScheduler] = BlockingScheduler
) -> BaseScheduler:
    with app.app_context():
        zone = clock.zone()
    scheduler = scheduler_class(
        timezone=zone,
        job_defaults={"coalesce": True, "misfire_grace_time": WEEK_SECONDS, "max_instances": 1},
    )
    for job in JOBS:
        scheduler.add_job(
            execute,
            CronTrigger(timezone=zone, **job.cron),
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
    scheduler.add_job(
        _recover,
        IntervalTrigger(seconds=int(RECOVERY_EVERY.total_seconds()), timezone=zone),
        args=[app],
        id=RECOVERY,
        name="Retry job runs that failed or whose process died",
        replace_existing=True,
    )
    return scheduler


def catch_up(app: Flask, scheduler: BaseScheduler) -> bool:
    """Make every missing return now (after downtime, or on first start) and recover dead or
    failed runs. When the database does not answer, try again in a minute; returns whether
    the catch-up ran."""
    try:
        recover(app)
        execute(app, MONTHLY_RETURNS)
    except Exception:
        log.exception("catch-up failed; trying again in %s", CATCH_UP_RETRY)
        scheduler.add_job(
            catch_up,
            DateTrigger(run_date=clock.now() + CATCH_UP_RETRY),
            args=[app, scheduler],
            id=CATCH_UP,
            name="Catch up after start",
            replace_existing=True,
        )
        return False
    return True


def run_forever(app: Flask) -> None:
    scheduler = build_scheduler(app)
    try:
        beat(app)
    except Exception:  # the database may be away at start; the minute's beat tries again
        log.exception("the first heartbeat failed")
    scheduler.add_job(
        catch_up,
        DateTrigger(run_date=clock.now()),
        args=[app, scheduler],
        id=CATCH_UP,
        name="Catch up after start",
    )
    scheduler.start()
