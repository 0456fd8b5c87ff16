"""The audit pages at a million entries: a person's history ("who has seen this person?") and
the audit log's filters by person, user, action and dates, timed as their pages run them (the
count and one page of 50, newest first), with the list of actions the filter offers.

It has a database of its own (a SQLite file under bench/.data, or the PostgreSQL database
`referrals_bench_audit_<rows>`), filled once with `--rows` entries spread over 20,000 people,
60 actions across three years.

    .venv/bin/python -m bench.audit_history --db sqlite --rows 1000000
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from flask import request
from flask_migrate import upgrade
from sqlalchemy import func, select, text

from bench import common
from referrals.admin.access_history import entries_page, history_query
from referrals.admin.forms import AuditFilterForm
from referrals.admin.views import audit_query, recorded_actions
from referrals.audit import AuditEvent
from referrals.extensions import db

PEOPLE = 20_000
ACTIONS = [f"area{a // 10}.action{a % 10}" for a in range(60)]


def database_url(kind: str, rows: int) -> str:
    """The benchmark's own database (it never shares a scale's): named after the entries."""
    return common.database_url(kind, common.Scale(f"audit_{rows}", 0, 0))


# Made up in the database itself: a million rows through Python would take many minutes.
FILL = {
    "sqlite": """
        INSERT INTO audit_event
            (at, action, object_type, object_id, subject_person_id, source, ip_address, detail)
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count),
        drawn AS (SELECT abs(random()) % :people + 1 AS person,
                         abs(random()) % 94608000 AS second,
                         abs(random()) % 60 AS action FROM n)
        SELECT datetime('2024-01-01', '+' || second || ' seconds') || '.000000',
               'area' || (action / 10) || '.action' || (action % 10),
               'referral', CAST(person AS TEXT), person, 'intake.referral', '10.0.0.1', '{}'
        FROM drawn
    """,
    "postgresql": """
        INSERT INTO audit_event
            (at, action, object_type, object_id, subject_person_id, source, ip_address, detail)
        SELECT timestamptz '2024-01-01 00:00:00+00' + second * interval '1 second',
               'area' || (action / 10) || '.action' || (action % 10),
               'referral', person::text, person, 'intake.referral', '10.0.0.1', '{}'
        FROM (SELECT floor(random() * :people)::int + 1 AS person,
                     floor(random() * 94608000)::int AS second,
                     floor(random() * 60)::int AS action
              FROM generate_series(1, :count)) AS drawn
    """,
}


def fill(rows: int) -> None:
    upgrade()
    have = int(db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
    db.session.commit()  # a command's unit of work holds SQLite's write lock: let it go
    if have >= rows:
        return
    common.note(f"making {rows - have:,} audit entries")
    with db.engine.begin() as connection:
        connection.execute(
            text(FILL[connection.dialect.name]), {"count": rows - have, "people": PEOPLE}
        )
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
                    return entries_page(audit_query(filters))

            return run

        def history(query_string: dict[str, str]) -> Callable[[], Any]:
            def run() -> Any:
                with app.test_request_context("/", query_string=query_string):
                    since = date.fromisoformat(query_string["since"]) if query_string else None
                    until = date.fromisoformat(query_string["until"]) if query_string else None
                    query = history_query(person, since, until)
                    return entries_page(query)

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
