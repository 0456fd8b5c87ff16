"""The several-hosts shape, proved: two gunicorn servers and two scheduler processes on one
PostgreSQL database, with signed-in people whose requests alternate between the servers while
the schedulers turn the month (and the week) over.

Each scheduler is a lane of `referrals scheduler catch-up` / `run-job` processes given the day
with `--today`: the 7th (last-but-one month's returns are due), the 8th (last month's registers
have closed: its returns are due) and the Monday after (last week's register reminders). The two
lanes run the same days at the same time, as two scheduler hosts would. Nothing is mocked: the
servers and schedulers are separate processes that share only the database and the secret key.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from bench.throughput import Load, gunicorn
from referrals.auth.models import OrganisationKind, Role, User
from referrals.courses.reminders import KIND as REMINDER
from referrals.extensions import db
from referrals.intake.models import ContactAttempt
from referrals.notifications.models import Notification
from referrals.reports.models import JobOutcome, JobRun, KpiReturn
from referrals.scheduler.jobs import MONTHLY_RETURNS, REGISTER_REMINDERS
from tests import factories
from tests.conftest import TEST_PASSWORD, make_app
from tests.factories import make_contract, make_course
from tests.intake_helpers import nhs_numbers
from tests.test_backup_schedule import fresh_database
from tests.test_load_under_gunicorn import (
    ROUNDS,
    Answer,
    VirtualPerson,
    _commissioner_day,
    _gp_day,
    _link_worker_day,
    _world,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="several servers and schedulers on one database is the PostgreSQL shape; "
        "set TEST_DATABASE_URL to a PostgreSQL URL to run it (SQLite is one host only)",
    ),
]

SECRET_KEY = "topology-test-secret-key-not-for-production"
CONTRACT_START = date(2026, 1, 1)
# The month turns: on the 7th February's registers are still open, on the 8th they close.
DAYS = [
    ("catch-up", "2026-03-07"),
    ("catch-up", "2026-03-08"),
    ("run-job", REGISTER_REMINDERS, "2026-03-09"),  # the Monday after
]


@dataclass
class EitherServer(VirtualPerson):
    """A person whose requests go to each server in turn, as a load balancer may send them:
    signed in on one, the form read from one and sent to the other."""

    bases: tuple[str, ...] = ()
    turn: int = 0

    def ask(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        self.base = self.bases[self.turn % len(self.bases)]
        self.turn += 1
        return super().ask(method, path, **kwargs)

    def pause(self) -> None:
        # Shorter than the single-server load's: the point here is which server answers.
        threading.Event().wait(self.rng.uniform(0.05, 0.4))


def _scheduler_world(url: str) -> dict[str, Any]:
    """Two contracts from January, and a course whose first session (the Wednesday before the
    Monday) has no register, led by two artists."""
    app = make_app(url)
    with app.app_context():
        contracts = [
            make_contract(start_date=CONTRACT_START, end_date=date(2026, 12, 31)) for _ in range(2)
        ]
        provider = factories.make_organisation(OrganisationKind.PROVIDER)
        artists = [factories.make_user(Role.ARTIST, organisation=provider) for _ in range(2)]
        make_course(provider, contract=contracts[0], start=date(2026, 3, 4), lead_artists=artists)
        db.session.commit()
        world = {"contracts": [c.id for c in contracts], "artists": [a.id for a in artists]}
        db.session.remove()
        db.engine.dispose()
    return world


def _scheduler_lane(env: dict[str, str], outputs: list[str]) -> None:
    """One scheduler host: each day's work, in order, each in a process of its own."""
    for *command, day in DAYS:
        result = subprocess.run(
            [sys.executable, "-m", "referrals", "scheduler", *command, "--today", day],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        outputs.append(f"{' '.join(command)} {day}: exit {result.returncode}\n{result.stdout}")
        if result.returncode != 0:
            outputs.append(result.stderr[-2000:])


def test_two_servers_and_two_schedulers_on_one_postgresql(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as url:
        world = _world(url)  # migrates the new database, then people and referrals
        scheduled = _scheduler_world(url)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "REFERRALS_"))},
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET_KEY,
            "REFERRALS_SESSION_TOUCH_INTERVAL": "1",
            "REFERRALS_ARGON2_MEMORY_COST_KIB": "19456",
        }
        load = Load(duration=0, connections=0, threads=0, workers=1, worker_threads=4)
        answers: list[Answer] = []
        failures: list[str] = []
        lanes: list[list[str]] = [[], []]
        rng = random.Random(20260308)
        numbers = nhs_numbers()
        for _ in range(50):
            next(numbers)  # past the numbers the world used
        lock = threading.Lock()

        with (
            gunicorn("referrals:create_app()", env, load, "/health") as (server_a, _a),
            gunicorn("referrals:create_app()", env, load, "/health") as (server_b, _b),
        ):

            def person(email: str, first: int) -> EitherServer:
                bases = (server_a, server_b)[first:] + (server_a, server_b)[:first]
                return EitherServer(
                    email, bases[0], answers, random.Random(rng.random()), bases=bases
                )

            days: list[Callable[[], None]] = [
                *(
                    lambda e=e, n=n: _link_worker_day(person(e, n % 2), world["referrals"])
                    for n, e in enumerate(world["link_workers"])
                ),
                *(
                    lambda e=e, n=n: _gp_day(person(e, n % 2), numbers, lock)
                    for n, e in enumerate(world["gps"])
                ),
                lambda: _commissioner_day(person(world["commissioner"], 1)),
                *(lambda out=out: _scheduler_lane(env, out) for out in lanes),
            ]

            def run(day: Callable[[], None]) -> None:
                try:
                    day()
                except Exception as error:  # reported below with everyone else's
                    failures.append(f"{type(error).__name__}: {error}")

            started = time.monotonic()
            threads = [threading.Thread(target=run, args=(day,)) for day in days]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=300)

            print(f"\nload and schedulers: {time.monotonic() - started:.1f} s")  # for the record
            # A session made on server A is a session on server B, and the other way round.
            for signed_on, used_on in ((server_a, server_b), (server_b, server_a)):
                somebody = VirtualPerson(world["gps"][0], signed_on, answers, random.Random(1))
                somebody.sign_in()
                somebody.base = used_on
                inbox = somebody.ask("GET", "/messages/")
                assert inbox.status_code == 200, f"{used_on} refused a session from {signed_on}"
                assert TEST_PASSWORD not in inbox.text

        assert not failures, failures
        errors = [a for a in answers if a.status >= 500]
        assert not errors, [f"{a.method} {a.path}: {a.status}" for a in errors]
        for lane in lanes:
            assert len(lane) == len(DAYS) and all(": exit 0" in out for out in lane), lane

        app = make_app(url)
        with app.app_context():
            try:
                _check_the_work_was_done_once(world, scheduled)
            finally:
                db.session.remove()
                db.engine.dispose()


def _check_the_work_was_done_once(world: dict[str, Any], scheduled: dict[str, Any]) -> None:
    # The people's work, through both servers.
    contacts = db.session.scalar(select(func.count()).select_from(ContactAttempt))
    assert contacts == len(world["link_workers"]) * ROUNDS

    # Every return made once: January's on the 7th, February's on the 8th.
    made = db.session.execute(
        select(KpiReturn.scope_key, KpiReturn.period, func.count()).group_by(
            KpiReturn.scope_key, KpiReturn.period
        )
    ).all()
    expected = {
        (f"contract:{c}", p) for c in scheduled["contracts"] for p in ("2026-01", "2026-02")
    }
    assert {(scope, period) for scope, period, _ in made} == expected
    assert {count for *_, count in made} == {1}

    # Each (job, period) done by one scheduler; the other recorded that it skipped.
    runs = db.session.execute(
        select(JobRun.job_id, JobRun.period_key, JobRun.outcome).order_by(JobRun.id)
    ).all()
    for job_id, period in (
        (MONTHLY_RETURNS, "2026-01"),
        (MONTHLY_RETURNS, "2026-02"),
        (REGISTER_REMINDERS, "2026-W11"),
    ):
        outcomes = sorted(o for j, p, o in runs if (j, p) == (job_id, period))
        assert outcomes == [JobOutcome.SKIPPED, JobOutcome.SUCCEEDED], (job_id, period, runs)

    # Every reminder made once: one for each lead artist, not one per scheduler.
    reminded = db.session.scalars(
        select(Notification.user_id).where(Notification.kind == REMINDER)
    ).all()
    assert sorted(reminded) == sorted(scheduled["artists"])
    assert all(db.session.get(User, artist) for artist in scheduled["artists"])
