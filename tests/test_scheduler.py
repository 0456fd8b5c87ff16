"""Scheduled returns: exactly once across processes, catch-up after downtime, runs recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pytest
from sqlalchemy import func, select

from referrals.auth.models import Role
from referrals.courses.models import CourseSession
from referrals.extensions import db
from referrals.notifications.models import Notification
from referrals.reports.models import JobRun, KpiReturn
from referrals.reports.periods import Period
from referrals.reports.services import make_return, missing_returns
from referrals.scheduler import jobs
from referrals.scheduler.jobs import MONTHLY_RETURNS, REGISTER_REMINDERS, execute
from referrals.scheduler.runner import WEEK_SECONDS, build_scheduler
from tests import factories
from tests.course_helpers import make_contract, make_course

TODAY = date.today()
THIS_MONTH = Period.containing(TODAY)


def _scheduler_processes(app, count: int, command: str = "catch-up") -> list[str]:
    """Start `count` scheduler processes at once against the test database; wait for all."""
    db.session.commit()  # end this test's own transaction, which would hold SQLite's lock
    env = dict(
        os.environ,
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY="test-secret-key-not-for-production",
        FLASK_APP="referrals",
        REFERRALS_ARGON2_MEMORY_COST_KIB="19456",
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "scheduler", command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=240)
        assert process.returncode == 0, out
        outputs.append(out)
    return outputs


def _returns_per_key() -> dict[tuple[str, str], int]:
    rows = db.session.execute(
        select(KpiReturn.scope_key, KpiReturn.period, func.count()).group_by(
            KpiReturn.scope_key, KpiReturn.period
        )
    ).all()
    return {(scope, period): count for scope, period, count in rows}


@pytest.mark.slow
def test_four_scheduler_processes_make_each_return_exactly_once(app):
    start = THIS_MONTH.previous().previous().previous().previous().start  # four months ago
    first = make_contract(start_date=start)
    second = make_contract(start_date=start)
    make_course(contract=first)
    db.session.commit()

    _scheduler_processes(app, 4)

    db.session.expire_all()
    counts = _returns_per_key()
    expected = {
        (f"contract:{c.id}", p.key)
        for c in (first, second)
        for p in (
            Period.containing(start),
            Period.containing(start).next(),
            Period.containing(start).next().next(),
            THIS_MONTH.previous(),
        )
    }
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    runs = db.session.scalars(select(JobRun).where(JobRun.job_id == MONTHLY_RETURNS)).all()
    assert len(runs) == 4 and {r.outcome for r in runs} == {"succeeded"}
    made = sum(int(r.detail.split()[0]) for r in runs)
    assert made == len(expected)  # between them the four processes made each return once


@pytest.mark.slow
def test_after_a_three_month_outage_start_up_makes_exactly_the_missing_months(app):
    contract = make_contract(start_date=date(TODAY.year - 1, 1, 1))
    db.session.commit()
    last = THIS_MONTH.previous()
    outage = [last, last.previous(), last.previous().previous()]
    for contract_id, period in missing_returns(TODAY):
        if period not in outage:
            make_return(contract_id, period, today=TODAY, job=MONTHLY_RETURNS)
    before = db.session.scalar(select(func.count()).select_from(KpiReturn))

    _scheduler_processes(app, 1)

    db.session.expire_all()
    new = db.session.scalars(select(KpiReturn).order_by(KpiReturn.id).offset(before)).all()
    assert sorted(r.period for r in new) == sorted(p.key for p in outage)
    assert all(r.contract_id == contract.id and r.generated_by_job == MONTHLY_RETURNS for r in new)
    assert missing_returns(TODAY) == []


def test_returns_are_not_made_for_unfinished_months_or_before_the_contract(app):
    contract = make_contract(start_date=THIS_MONTH.previous().start)
    db.session.commit()
    assert missing_returns(TODAY) == [(contract.id, THIS_MONTH.previous())]


def test_a_failed_run_is_recorded_with_its_error(app, monkeypatch):
    def broken(today):
        raise RuntimeError("database went away")

    monkeypatch.setattr(
        jobs,
        "JOBS_BY_ID",
        {
            **jobs.JOBS_BY_ID,
            MONTHLY_RETURNS: jobs.Job(MONTHLY_RETURNS, "returns", {"day": 1}, broken),
        },
    )
    with pytest.raises(RuntimeError):
        execute(app, MONTHLY_RETURNS)
    run = db.session.scalar(select(JobRun))
    assert run.outcome == "failed" and "database went away" in run.error
    assert run.finished_at is not None


def test_the_schedule_survives_downtime_and_retries_failures(app):
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = build_scheduler(app, BackgroundScheduler)
    scheduler.start(paused=True)  # jobs get their real settings, nothing runs
    scheduled = {job.id: job for job in scheduler.get_jobs()}
    assert {MONTHLY_RETURNS, REGISTER_REMINDERS} <= set(scheduled)
    monthly = scheduled[MONTHLY_RETURNS]
    assert monthly.coalesce is True and monthly.misfire_grace_time == WEEK_SECONDS
    assert str(monthly.trigger.timezone) == "Europe/London"
    fields = {f.name: str(f) for f in monthly.trigger.fields}
    assert fields["day"] == "1" and fields["hour"] == "2"
    # A failing run gets a retry scheduled.
    from apscheduler.events import EVENT_JOB_ERROR, JobExecutionEvent

    scheduler._dispatch_event(
        JobExecutionEvent(
            EVENT_JOB_ERROR, MONTHLY_RETURNS, None, TODAY, exception=RuntimeError("x")
        )
    )
    retry = scheduler.get_job(f"{MONTHLY_RETURNS}:retry")
    scheduler.shutdown(wait=False)
    assert retry is not None


def test_register_reminders_go_to_lead_artists_once_a_week(app):
    from datetime import timedelta

    provider = factories.make_organisation("provider")
    artist = factories.make_user(Role.ARTIST, organisation=provider)
    course = make_course(provider, start=TODAY - timedelta(days=3), lead_artists=[artist])
    db.session.commit()
    first = execute(app, REGISTER_REMINDERS)
    second = execute(app, REGISTER_REMINDERS)
    assert first.outcome == "succeeded" and second.outcome == "skipped"
    reminders = db.session.scalars(
        select(Notification).where(Notification.kind == "register_reminder")
    ).all()
    assert len(reminders) == 1 and reminders[0].user_id == artist.id
    session = db.session.scalar(
        select(CourseSession)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.date)
    )
    assert f"/sessions/{session.id}/register" == reminders[0].link


def test_kpi_generate_command_is_idempotent_and_refuses_bad_input(app, runner):
    contract = make_contract(start_date=THIS_MONTH.previous().start)
    db.session.commit()
    period = THIS_MONTH.previous().key
    first = runner.invoke(args=["kpi", "generate", "--period", period])
    assert first.exit_code == 0 and "made" in first.output
    again = runner.invoke(args=["kpi", "generate", "--period", period])
    assert "already existed" in again.output
    assert db.session.scalar(select(func.count()).select_from(KpiReturn)) == 1
    for bad in (
        ["--period", "2026-13"],
        ["--period", "March"],
        ["--period", THIS_MONTH.key],
        ["--period", period, "--contract", "999"],
    ):
        result = runner.invoke(args=["kpi", "generate", *bad])
        assert result.exit_code != 0, bad
    assert db.session.scalar(select(func.count()).select_from(KpiReturn)) == 1

    no_reason = runner.invoke(
        args=[
            "kpi",
            "regenerate",
            "--period",
            period,
            "--contract",
            str(contract.id),
            "--reason",
            " ",
        ]
    )
    assert no_reason.exit_code != 0 and "reason" in no_reason.output
    again = runner.invoke(
        args=[
            "kpi",
            "regenerate",
            "--period",
            period,
            "--contract",
            str(contract.id),
            "--reason",
            "Late registers entered",
        ]
    )
    assert again.exit_code == 0 and "version 2" in again.output
    versions = db.session.scalars(select(KpiReturn).order_by(KpiReturn.version)).all()
    assert [v.version for v in versions] == [1, 2]
    assert versions[0].superseded_at is not None and versions[1].superseded_at is None
    assert versions[1].reason == "Late registers entered"


def test_kpi_export_command_writes_the_csv(app, runner, tmp_path):
    make_contract(start_date=THIS_MONTH.previous().start)
    db.session.commit()
    runner.invoke(args=["kpi", "generate", "--period", THIS_MONTH.previous().key])
    kpi_return = db.session.scalar(select(KpiReturn))
    output = tmp_path / "return.csv"
    result = runner.invoke(
        args=[
            "kpi",
            "export",
            "--return",
            str(kpi_return.id),
            "--format",
            "csv",
            "--output",
            str(output),
        ]
    )
    assert result.exit_code == 0, result.output
    text = output.read_bytes().decode("utf-8-sig")
    assert text.splitlines()[0] == "period,scope,code,name,breakdown,value,suppressed,target_rating"
    assert any(line.split(",")[2] == "B1" for line in text.splitlines()[1:])
