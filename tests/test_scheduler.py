"""Scheduled jobs: exactly once per (job, period) across processes, each return alone, dead
runs recovered, catch-up after downtime, and every run recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from apscheduler.schedulers.background import BackgroundScheduler
from flask_migrate import upgrade
from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import Role, User
from referrals.courses.models import CourseSession
from referrals.extensions import db
from referrals.notifications.models import Notification
from referrals.reports import services
from referrals.reports.models import JobOutcome, JobRun, KpiReturn
from referrals.reports.periods import Period
from referrals.reports.services import (
    latest_closed_period,
    make_return,
    missing_returns,
    registers_close_on,
)
from referrals.scheduler import jobs
from referrals.scheduler.jobs import (
    FAILED_KIND,
    JOBS_BY_ID,
    MONTHLY_RETURNS,
    REGISTER_REMINDERS,
    RETRY_DELAY,
    RETRY_LIMIT,
    Heartbeat,
    execute,
    period_key,
    recover,
)
from referrals.scheduler.runner import CATCH_UP, RECOVERY, WEEK_SECONDS, build_scheduler, catch_up
from tests import factories
from tests.conftest import make_app
from tests.factories import make_contract, make_course

TODAY = clock.today()
THIS_MONTH = Period.containing(TODAY)
LAST_CLOSED = latest_closed_period(TODAY)
# A day whose last month's registers have closed: returns for March 2026 are due.
DUE_DAY = date(2026, 4, 8)
MARCH = Period(2026, 3)


def _scheduler_processes(app, count: int, *command: str) -> list[str]:
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
            [sys.executable, "-m", "flask", "scheduler", *(command or ("catch-up",))],
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


def _runs(job_id: str) -> list[JobRun]:
    return list(
        db.session.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id))
    )


def _admin() -> int:
    return factories.make_user(Role.ADMIN).id


def _execute(app, job_id: str, today: date | None = None) -> JobRun:
    """Run a job as a scheduler process would, on its own session; this test's session first
    ends its transaction, which on SQLite would hold the write lock."""
    db.session.commit()
    return execute(app, job_id, today)


def _recover(app) -> list[JobRun]:
    db.session.commit()
    return recover(app)


def _failure_notices() -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.kind == FAILED_KIND)))


def test_a_months_returns_are_due_the_day_after_its_registers_close():
    # Artists may change a register for 7 days after the session: the 31st's until the 7th.
    assert registers_close_on(MARCH) == date(2026, 4, 8)
    assert latest_closed_period(date(2026, 4, 7)) == Period(2026, 2)
    assert latest_closed_period(date(2026, 4, 8)) == MARCH
    assert latest_closed_period(date(2026, 1, 8)) == Period(2025, 12)
    assert latest_closed_period(date(2026, 1, 7)) == Period(2025, 11)
    assert period_key(JOBS_BY_ID[MONTHLY_RETURNS], date(2026, 4, 7)) == "2026-02"


def test_returns_are_not_made_before_registers_close_or_before_the_contract(app):
    contract = make_contract(start_date=date(2026, 2, 1), end_date=date(2027, 1, 31))
    db.session.commit()
    assert missing_returns(date(2026, 4, 7)) == [(contract.id, Period(2026, 2))]
    assert missing_returns(DUE_DAY) == [(contract.id, Period(2026, 2)), (contract.id, MARCH)]


@pytest.mark.slow
def test_four_scheduler_processes_do_every_jobs_work_exactly_once(app):
    start = LAST_CLOSED.previous().previous().previous()  # four closed months
    first = make_contract(start_date=start.start)
    second = make_contract(start_date=start.start)
    provider = factories.make_organisation("provider")
    artists = [factories.make_user(Role.ARTIST, organisation=provider) for _ in range(2)]
    make_course(provider, contract=first, start=TODAY - timedelta(days=3), lead_artists=artists)
    db.session.commit()

    _scheduler_processes(app, 4, "catch-up")
    _scheduler_processes(app, 4, "run-job", REGISTER_REMINDERS)

    db.session.expire_all()
    counts = _returns_per_key()
    months = [start, start.next(), start.next().next(), LAST_CLOSED]
    assert set(counts) == {(f"contract:{c.id}", p.key) for c in (first, second) for p in months}
    assert set(counts.values()) == {1}
    for job_id in (MONTHLY_RETURNS, REGISTER_REMINDERS):
        outcomes = sorted(run.outcome for run in _runs(job_id))
        assert outcomes == [JobOutcome.SKIPPED] * 3 + [JobOutcome.SUCCEEDED], job_id
    done = next(r for r in _runs(MONTHLY_RETURNS) if r.outcome == JobOutcome.SUCCEEDED)
    assert done.detail == "8 returns made" and done.period_key == LAST_CLOSED.key
    reminders = db.session.scalars(
        select(Notification.user_id).where(Notification.kind == "register_reminder")
    ).all()
    assert sorted(reminders) == sorted(a.id for a in artists)  # one each, not four


@pytest.mark.slow
def test_after_a_three_month_outage_start_up_makes_exactly_the_missing_months(app):
    contract = make_contract(start_date=date(TODAY.year - 1, 1, 1))
    db.session.commit()
    outage = [LAST_CLOSED, LAST_CLOSED.previous(), LAST_CLOSED.previous().previous()]
    for contract_id, period in missing_returns(TODAY):
        if period not in outage:
            make_return(contract_id, period, today=TODAY, job=MONTHLY_RETURNS)
    before = db.session.scalar(select(func.count()).select_from(KpiReturn))

    _scheduler_processes(app, 1)

    db.session.expire_all()
    new = db.session.scalars(select(KpiReturn).order_by(KpiReturn.id).offset(before)).all()
    assert sorted(r.period for r in new) == sorted(p.key for p in outage)
    assert all(r.contract_id == contract.id and r.generated_by_job == MONTHLY_RETURNS for r in new)
    assert not any(r.provisional for r in new)
    assert missing_returns(TODAY) == []


def _contracts_for_march(count: int) -> list[int]:
    contracts = [
        make_contract(start_date=MARCH.start, end_date=date(2026, 12, 31)).id for _ in range(count)
    ]
    db.session.commit()
    return contracts


def test_one_failing_return_does_not_stop_the_others_and_is_retried(app, monkeypatch):
    admin = _admin()
    first, broken, third = _contracts_for_march(3)
    real_compute = services.compute

    def compute_failing_for_one(scope, period, *rest):
        if scope.contract_id == broken:
            raise RuntimeError("figures could not be read")
        return real_compute(scope, period, *rest)

    monkeypatch.setattr(services, "compute", compute_failing_for_one)
    run = _execute(app, MONTHLY_RETURNS, DUE_DAY)

    assert run.outcome == JobOutcome.FAILED and run.detail == "2 returns made, 1 failed"
    assert f"contract {broken}, 2026-03" in run.error and "could not be read" in run.error
    assert set(_returns_per_key()) == {(f"contract:{c}", "2026-03") for c in (first, third)}
    notices = _failure_notices()
    assert [n.user_id for n in notices] == [admin] and notices[0].link == "/admin/jobs"

    monkeypatch.setattr(services, "compute", real_compute)
    assert _recover(app) == []  # not yet: retries wait a while
    with time_machine.travel(datetime.now(UTC) + RETRY_DELAY + timedelta(seconds=1)):
        retried = _recover(app)
    assert [(r.outcome, r.detail) for r in retried] == [(JobOutcome.SUCCEEDED, "1 return made")]
    assert retried[0].period_key == "2026-03" and retried[0].for_date == DUE_DAY
    assert set(_returns_per_key().values()) == {1} and len(_returns_per_key()) == 3
    assert _execute(app, MONTHLY_RETURNS, DUE_DAY).outcome == JobOutcome.SKIPPED


def test_a_failing_job_is_retried_a_limited_number_of_times(app, monkeypatch):
    _contracts_for_march(1)
    monkeypatch.setattr(services, "compute", lambda scope, period, *rest: 1 / 0)
    _execute(app, MONTHLY_RETURNS, DUE_DAY)
    moment = datetime.now(UTC)
    for _ in range(RETRY_LIMIT + 1):
        moment += RETRY_DELAY + timedelta(seconds=1)
        with time_machine.travel(moment):
            _recover(app)
    failed = [r for r in _runs(MONTHLY_RETURNS) if r.outcome == JobOutcome.FAILED]
    assert len(failed) == RETRY_LIMIT and "ZeroDivisionError" in failed[-1].error


def test_a_run_whose_process_died_is_detected_and_retried(app):
    admin = _admin()
    (contract,) = _contracts_for_march(1)
    # A process claimed the month's returns and was killed before it made any: its row says
    # "running" and its heartbeat stops.
    dead = jobs._claim(JOBS_BY_ID[MONTHLY_RETURNS], "2026-03", DUE_DAY)
    assert dead is not None
    dead_id = dead.id
    db.session.commit()
    assert _execute(app, MONTHLY_RETURNS, DUE_DAY).detail.startswith("running on ")
    assert _recover(app) == []  # still within its heartbeat's grace

    later = datetime.now(UTC) + app.config["JOB_STALE_AFTER"] + timedelta(seconds=1)
    with time_machine.travel(later):
        retried = _recover(app)

    assert [r.outcome for r in retried] == [JobOutcome.SUCCEEDED]
    abandoned = db.session.get(JobRun, dead_id)
    db.session.refresh(abandoned)
    assert abandoned.outcome == JobOutcome.ABANDONED and "process stopped" in abandoned.error
    assert _returns_per_key() == {(f"contract:{contract}", "2026-03"): 1}
    assert [n.user_id for n in _failure_notices()] == [admin]


def test_a_long_run_that_still_beats_is_not_taken_for_dead(app):
    run = jobs._claim(JOBS_BY_ID[MONTHLY_RETURNS], "2026-03", DUE_DAY)
    assert run is not None
    run_id = run.id
    db.session.commit()
    later = datetime.now(UTC) + app.config["JOB_STALE_AFTER"] + timedelta(seconds=1)
    with time_machine.travel(later):
        Heartbeat(app, run_id).beat()
        assert _recover(app) == []
    assert db.session.get(JobRun, run_id).outcome == JobOutcome.RUNNING


def test_a_failed_run_is_recorded_with_its_error_and_admins_are_told(app, monkeypatch):
    admin = _admin()

    def broken(today):
        raise RuntimeError("database went away")

    monkeypatch.setitem(
        jobs.JOBS_BY_ID, MONTHLY_RETURNS, jobs.Job(MONTHLY_RETURNS, "returns", {"day": 1}, broken)
    )
    run = _execute(app, MONTHLY_RETURNS)
    assert run.outcome == JobOutcome.FAILED and "database went away" in run.error
    assert run.finished_at is not None
    (notice,) = _failure_notices()
    assert notice.user_id == admin and "database went away" in notice.text


def test_the_catch_up_at_start_is_retried_while_the_database_is_unavailable(tmp_path):
    folder = tmp_path / "not-yet"  # SQLite cannot open a database in a missing folder
    broken = make_app(f"sqlite:///{Path(folder) / 'db.sqlite'}")
    scheduler = build_scheduler(broken, BackgroundScheduler)
    scheduler.start(paused=True)
    try:
        assert catch_up(broken, scheduler) is False
        retry = scheduler.get_job(CATCH_UP)
        assert retry is not None
        folder.mkdir()  # the database comes back
        with broken.app_context():
            upgrade()
        assert retry.func(*retry.args) is True
    finally:
        scheduler.shutdown(wait=False)
    with broken.app_context():
        (run,) = db.session.scalars(select(JobRun)).all()
        assert (run.job_id, run.outcome) == (MONTHLY_RETURNS, JobOutcome.SUCCEEDED)
        db.engine.dispose()


def test_the_schedule_survives_downtime_and_recovers_runs(app):
    scheduler = build_scheduler(app, BackgroundScheduler)
    scheduler.start(paused=True)  # jobs get their real settings, nothing runs
    scheduled = {job.id: job for job in scheduler.get_jobs()}
    scheduler.shutdown(wait=False)
    assert {MONTHLY_RETURNS, REGISTER_REMINDERS, RECOVERY} <= set(scheduled)
    monthly = scheduled[MONTHLY_RETURNS]
    assert monthly.coalesce is True and monthly.misfire_grace_time == WEEK_SECONDS
    assert str(monthly.trigger.timezone) == "Europe/London"
    fields = {f.name: str(f) for f in monthly.trigger.fields}
    assert fields["day"] == "8" and fields["hour"] == "2"


def test_register_reminders_go_to_lead_artists_once_a_week(app):
    provider = factories.make_organisation("provider")
    artist = factories.make_user(Role.ARTIST, organisation=provider)
    course = make_course(provider, start=TODAY - timedelta(days=3), lead_artists=[artist])
    db.session.commit()
    first = _execute(app, REGISTER_REMINDERS)
    second = _execute(app, REGISTER_REMINDERS)
    assert first.outcome == JobOutcome.SUCCEEDED and second.outcome == JobOutcome.SKIPPED
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


def test_command_line_regeneration_records_who_asked(app, runner):
    admin = _admin()
    contract = make_contract(start_date=THIS_MONTH.previous().start)
    db.session.commit()
    period = THIS_MONTH.previous().key
    assert runner.invoke(args=["kpi", "generate", "--period", period]).exit_code == 0
    base = ["kpi", "regenerate", "--period", period, "--contract", str(contract.id)]
    base += ["--reason", "Late registers entered"]
    assert runner.invoke(args=base).exit_code != 0  # --by is required
    stranger = runner.invoke(args=[*base, "--by", "nobody@example.test"])
    assert stranger.exit_code != 0 and "no active admin" in stranger.output
    email = db.session.get(User, admin).email
    done = runner.invoke(args=[*base, "--by", email.upper()])
    assert done.exit_code == 0, done.output
    latest = db.session.scalar(select(KpiReturn).where(KpiReturn.superseded_at.is_(None)))
    assert latest.version == 2 and latest.generated_by_id == admin
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "kpi_return.regenerated")
    )
    assert event.actor_id == admin


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

    admin = db.session.get(User, _admin())
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
            "--by",
            admin.email,
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
            "--by",
            admin.email,
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
    assert text.splitlines()[0] == (
        "period,scope,span,code,name,breakdown,value,suppressed,"
        "target_minimum,target_expected,target_stretch,target_rating,version,generated_at,"
        "provisional"
    )
    assert any(line.split(",")[3] == "B1" for line in text.splitlines()[1:])


def test_admins_see_job_history_and_failures_on_a_page(app, login_as, monkeypatch):
    client = login_as(Role.ADMIN)

    def broken(today):
        raise RuntimeError("database went away")

    monkeypatch.setitem(
        jobs.JOBS_BY_ID, MONTHLY_RETURNS, jobs.Job(MONTHLY_RETURNS, "returns", {"day": 1}, broken)
    )
    _execute(app, MONTHLY_RETURNS)
    _execute(app, REGISTER_REMINDERS)

    page = client.get("/admin/jobs").get_data(as_text=True)
    assert "2 runs, newest first" in page
    assert "database went away" in page and "Failed" in page and "0 reminders sent" in page
    problems = client.get("/admin/jobs?show=problems").get_data(as_text=True)
    assert "1 run, newest first" in problems and "database went away" in problems
    inbox = client.get("/messages/").get_data(as_text=True)
    assert "failed for" in inbox and "database went away" in inbox
