"""The audit pages at a million entries: a person's history ("who has seen this person?") and
the audit log's filters by person, user, action and dates, timed as their pages run them (the
count and one page of 50, newest first), with the list of actions the filter offers.

It has a database of its own (a SQLite file under bench/.data, or the PostgreSQL database
`referrals_bench_audit_<rows>`), filled once with `--rows` entries spread over 20,000 people,
200 users and 60 actions across three years.

    .venv/bin/python -m bench.audit_history --db sqlite --rows 1000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import request
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from bench import common
from referrals.admin.access_history import history_query
from referrals.admin.forms import AuditFilterForm
from referrals.admin.views import audit_query, recorded_actions
from referrals.audit import AuditEvent
from referrals.extensions import db
from referrals.pagination import Page

PEOPLE = 20_000
USERS = 200
ACTIONS = [f"area{a // 10}.action{a % 10}" for a in range(60)]
START = datetime(2024, 1, 1, tzinfo=UTC)
BATCH = 20_000


def database_url(kind: str, rows: int) -> str:
    name = f"audit_{rows}"
    if kind == "sqlite":
        common.DATA_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{common.DATA_DIR / f'{name}.sqlite'}"
    server = make_url(common.POSTGRES_SERVER)
    database = f"referrals_bench_{name}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if not connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ):
                connection.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return server.set(database=database).render_as_string(hide_password=False)


def fill(rows: int) -> None:
    upgrade()
    have = int(db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
    if have >= rows:
        return
    chance = random.Random(14)  # made-up data, the same every run
    span = 3 * 365 * 24 * 3600
    for done in range(have, rows, BATCH):
        common.note(f"audit entries: {done:,} of {rows:,}")
        batch = []
        for _ in range(min(BATCH, rows - done)):
            person = chance.randrange(1, PEOPLE + 1)
            batch.append(
                {
                    "at": START + timedelta(seconds=chance.randrange(span)),
                    "actor_id": None,
                    "action": chance.choice(ACTIONS),
                    "object_type": "referral",
                    "object_id": str(person),
                    "subject_person_id": person,
                    "source": "intake.referral",
                    "ip_address": "10.0.0.1",
                    "detail": {"user": chance.randrange(1, USERS + 1)},
                }
            )
        db.session.execute(insert(AuditEvent), batch)
        db.session.commit()
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))


def timed(work: Callable[[], Any], repeats: int = 5) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        db.session.rollback()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    app = common.make_app(database_url(args.db, args.rows))
    with app.app_context():
        fill(args.rows)
        person = 4242
        march = {"since": date(2025, 3, 1).isoformat(), "until": date(2025, 3, 31).isoformat()}

        def audit_page(query_string: dict[str, str]) -> Callable[[], Any]:
            def run() -> Any:
                with app.test_request_context("/admin/audit", query_string=query_string):
                    filters = AuditFilterForm(request.args, actions=recorded_actions(), users=[])
                    assert filters.validate(), filters.errors
                    return Page.from_request(audit_query(filters), per_page=50, scalars=False)

            return run

        def history(query_string: dict[str, str]) -> Callable[[], Any]:
            def run() -> Any:
                with app.test_request_context("/", query_string=query_string):
                    since = date.fromisoformat(query_string["since"]) if query_string else None
                    until = date.fromisoformat(query_string["until"]) if query_string else None
                    query = history_query(person, since, until)
                    return Page.from_request(query, per_page=50, scalars=False)

            return run

        results = {
            "database": args.db,
            "audit_entries": args.rows,
            "person_history_first_page": timed(history({})),
            "person_history_one_month": timed(history(march)),
            "actions_offered_by_the_filter": timed(recorded_actions),
            "audit_log_first_page_unfiltered": timed(audit_page({})),
            "audit_log_by_person": timed(audit_page({"person": f"P{person}"})),
            "audit_log_by_action_and_month": timed(audit_page({"action": ACTIONS[7], **march})),
            "audit_log_one_month": timed(audit_page(march)),
            "audit_log_page_100_unfiltered": timed(audit_page({"page": "100"})),
        }
        common.emit(results)


if __name__ == "__main__":
    main()
