"""What every benchmark shares: scales, the database, the app, signing in, timing and output.

A benchmark database is made once per scale and kind (a SQLite file under bench/.data, or a
PostgreSQL database named after the scale) and reused by every script until it is dropped, since
generating 100,000 referrals takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine, make_url

BENCH_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_ROOT.parent
DATA_DIR = BENCH_ROOT / ".data"
RESULTS_DIR = BENCH_ROOT / "results"

# A fixed key so the in-process app and the gunicorn workers accept each other's cookies.
SECRET_KEY = "bench-secret-key-not-for-production"  # noqa: S105
RETURN_MONTHS = 12  # months of KPI returns made after generating the data
POSTGRES_SERVER = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Scale:
    name: str
    referrals: int
    attendances: int


SCALES = {
    "tiny": Scale("tiny", 300, 3_000),
    "small": Scale("small", 2_000, 20_000),
    "medium": Scale("medium", 20_000, 200_000),
    "full": Scale("full", 100_000, 1_000_000),
    # Ten times a large scheme: the size every page must stay flat up to.
    "huge": Scale("huge", 1_000_000, 10_000_000),
}


# Arguments and output ----------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--return-months",
        type=int,
        default=RETURN_MONTHS,
        help="months of KPI returns to make before measuring (default %(default)s)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="Use this database (seeded first if it holds no referrals) instead of the "
        "scale's own.",
    )


def emit(result: dict[str, Any]) -> None:
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def note(message: str) -> None:
    """Progress goes to stderr so stdout stays one JSON object."""
    print(message, file=sys.stderr, flush=True)


# The database ------------------------------------------------------------------------------


def database_url(kind: str, scale: Scale) -> str:
    if kind == "sqlite":
        DATA_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{DATA_DIR / f'{scale.name}.sqlite'}"
    server = make_url(POSTGRES_SERVER)
    name = f"referrals_bench_{scale.name}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server.set(database=name).render_as_string(hide_password=False)


def bench_config(url: str) -> dict[str, Any]:
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "SECRET_KEY": SECRET_KEY,
        "MFA_REQUIRED_ROLES": [],
    }


def make_app(url: str) -> Flask:
    from referrals import create_app

    return create_app(bench_config(url))


def server_environment(url: str) -> dict[str, str]:
    """The same configuration, as environment variables for `flask` and `gunicorn`."""
    env = dict(os.environ)
    env.update(
        {
            "FLASK_APP": "referrals",
            "DATABASE_URL": url,
            "SECRET_KEY": SECRET_KEY,
            "REFERRALS_MFA_REQUIRED_ROLES": "[]",
            "PYTHONPATH": str(PROJECT_ROOT),
        }
    )
    return env


def prepare(args: argparse.Namespace) -> tuple[Flask, str, Scale]:
    """The app on a migrated, seeded benchmark database (made now if it is missing or empty)."""
    scale = SCALES[args.scale]
    url = args.database or database_url(args.db, scale)
    app = make_app(url)
    with app.app_context():
        from flask_migrate import upgrade

        from referrals.extensions import db
        from referrals.intake.models import Referral

        _refuse_other_data(db.engine)
        upgrade()
        if not db.session.scalar(select(Referral.id).limit(1)):
            from referrals.seeding.scale import seed_scale

            note(f"Seeding {scale.referrals:,} referrals, {scale.attendances:,} attendances ...")
            started = time.perf_counter()
            seed_scale(scale.referrals, scale.attendances)
            db.session.commit()
            note(f"Seeded in {time.perf_counter() - started:.0f} s")
        if db.engine.dialect.name == "postgresql":
            # Planner statistics and the visibility map (which lets an index answer a query
            # without visiting the table), as autovacuum keeps them in service (it may be off
            # here). VACUUM runs outside a transaction.
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE"))
        started = time.perf_counter()
        made = make_recent_returns(args.return_months)
        if made:
            note(f"{made} KPI returns made in {time.perf_counter() - started:.0f} s")
        db.session.remove()
    return app, url, scale


def _refuse_other_data(engine: Engine) -> None:
    """Benchmarks migrate, make returns and delete some: only on an empty database or one
    made by the generator (its accounts are all @scale.test), never on a scheme's own data."""
    from sqlalchemy import inspect

    if "user_account" not in inspect(engine).get_table_names():
        return
    with engine.connect() as connection:
        others = connection.scalar(
            text("SELECT count(*) FROM user_account WHERE email NOT LIKE '%@scale.test'")
        )
    if others:
        raise SystemExit(
            f"{engine.url.render_as_string(hide_password=True)} holds accounts the generator did "
            "not make: benchmarks run only on an empty database or one made by `flask seed scale`."
        )


def make_recent_returns(months: int = RETURN_MONTHS) -> int:
    """Each contract's returns for the last `months` finished months, as the scheduler makes them.

    The commissioner dashboard then shows a year of trends. Older months are left out: making
    eight years of returns would take longer than the benchmarks themselves.
    """
    from referrals import clock
    from referrals.reports.periods import Period, last_periods
    from referrals.reports.services import contracts_active_in, make_return
    from referrals.scheduler.jobs import MONTHLY_RETURNS

    if months < 1:
        return 0
    today = clock.today()
    made = 0
    for period in last_periods(Period.containing(today).previous(), months):
        for contract in contracts_active_in(period):
            made += make_return(contract.id, period, today=today, job=MONTHLY_RETURNS).created
    return made


def data_shape(app: Flask) -> dict[str, int]:
    """Row counts of the tables the pages and KPIs read, as measured."""
    from referrals.courses.models import Attendance, Course, CourseSession, Enrolment
    from referrals.extensions import db
    from referrals.intake.models import Patient, Referral
    from referrals.reports.models import KpiReturn

    with app.app_context():
        counts = {
            model.__tablename__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (
                Referral,
                Patient,
                Course,
                CourseSession,
                Enrolment,
                Attendance,
                KpiReturn,
            )
        }
        db.session.remove()
    return counts


def database_kind(url: str) -> str:
    return make_url(url).get_backend_name()


def machine(app: Flask | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # Other work on the machine skews the figures; the load average shows how much.
        "load_average": [round(n, 2) for n in os.getloadavg()],
    }
    if app is not None:
        from referrals.extensions import db

        with app.app_context():
            if db.engine.dialect.name == "postgresql":
                facts["database_server"] = "PostgreSQL " + str(
                    db.session.scalar(text("SHOW server_version"))
                )
            else:
                import sqlite3

                facts["database_server"] = f"SQLite {sqlite3.sqlite_version}"
            db.session.remove()
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def header(app: Flask, url: str, scale: Scale, benchmark: str) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "database": database_kind(url),
        "scale": {
            "name": scale.name,
            "referrals": scale.referrals,
            "attendances": scale.attendances,
        },
        "rows": data_shape(app),
        "machine": machine(app),
    }


# Who the benchmarks act as -------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Who signs in, and the records the pages show, in a generated scheme."""

    password: str
    link_worker_email: str
    gp_email: str
    artist_email: str
    commissioner_email: str
    referral_id: int
    gp_referral_id: int  # the newest referral of the GP's practice for someone registered there
    register_session_id: int
    register_size: int
    contract_id: int


def targets(app: Flask) -> Targets:
    """The generated scheme's benchmark accounts and records.

    The artist's register is the session on the day the scheme was generated; a database
    reused on a later day uses it while the artist may still edit it (seven days).
    """
    from sqlalchemy.exc import NoResultFound

    from referrals import clock
    from referrals.extensions import db
    from referrals.seeding.demo import DEMO_PASSWORD
    from referrals.seeding.scale import scale_bench_targets

    with app.app_context():
        today = clock.today()
        for days_ago in range(8):
            try:
                found = scale_bench_targets(today - timedelta(days=days_ago))
                break
            except NoResultFound:
                continue
        else:
            raise RuntimeError(
                "the artist has no register from the last seven days: the benchmark database "
                "is too old, drop it and run again"
            )
        gp_referral_id = _gp_referral(found.emails["referrer"])
        db.session.remove()
    return Targets(
        password=DEMO_PASSWORD,
        link_worker_email=found.emails["link_worker"],
        gp_email=found.emails["referrer"],
        artist_email=found.emails["artist"],
        commissioner_email=found.emails["commissioner"],
        referral_id=found.referral_id,
        gp_referral_id=gp_referral_id,
        register_session_id=found.session_id,
        register_size=found.register_size,
        contract_id=found.contract_id,
    )


def _gp_referral(email: str) -> int:
    """The top of the GP's referral list among people registered with their practice and
    without details to check: the page a GP most often opens."""
    from sqlalchemy import select

    from referrals.auth.models import User
    from referrals.extensions import db
    from referrals.intake.models import Patient, PatientReconciliation, Referral

    practice = select(User.organisation_id).where(User.email == email).scalar_subquery()
    found = db.session.scalar(
        select(Referral.id)
        .join(Patient, Patient.id == Referral.patient_id)
        .outerjoin(PatientReconciliation, PatientReconciliation.referral_id == Referral.id)
        .where(
            Referral.gp_practice_id == practice,
            Patient.gp_practice_id == practice,
            PatientReconciliation.id.is_(None),
        )
        .order_by(Referral.received_on.desc(), Referral.id.desc())
        .limit(1)
    )
    if found is None:
        raise RuntimeError("the GP's practice has no referrals")
    return int(found)


_CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    if match is None:
        raise RuntimeError("the page has no CSRF token")
    return match.group(1)


def signed_in_client(app: Flask, email: str, password: str) -> FlaskClient:
    """A test client signed in through the real sign-in form, CSRF and all."""
    client = app.test_client()
    token = csrf_token(client.get("/sign-in").get_data(as_text=True))
    response = client.post(
        "/sign-in", data={"csrf_token": token, "email": email, "password": password}
    )
    if response.status_code != 302:
        raise RuntimeError(f"signing in as {email} failed ({response.status_code})")
    return client


# Measuring ---------------------------------------------------------------------------------


class QueryCounter:
    """Counts SQL statements sent through an engine while it is attached."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    @contextmanager
    def attached(self) -> Iterator[QueryCounter]:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        try:
            yield self
        finally:
            event.remove(self.engine, "before_cursor_execute", self._seen)


def engine_of(app: Flask) -> Engine:
    from referrals.extensions import db

    with app.app_context():
        return db.engine


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, round(share * len(sorted_values) + 0.4999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise_ms(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 0.50), 2),
        "p95_ms": round(percentile(ordered, 0.95), 2),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def timed(call: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, last = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        last = call()
        times.append(time.perf_counter() - started)
    return times, last
