"""The link worker's home page counts their own open referrals from the index on assignee and
status alone, so the count reads their open referrals only, never every referral ever assigned
to them (which grows with the scheme's history).

SQLite's `EXPLAIN QUERY PLAN` names the index a statement reads and whether the table's rows
are read too; PostgreSQL plans by its statistics, which a test database of a few rows does not
resemble, so the check runs on SQLite.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event

from referrals.auth.models import Role
from referrals.extensions import db
from tests.world import build_world


def _statements_of(client: Any, path: str) -> list[tuple[str, Any]]:
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        response = client.get(path)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert response.status_code == 200
    return sent


def test_a_link_workers_own_open_referrals_are_counted_from_the_index_alone(
    app: Flask, login_as: Any
) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("query plans are checked on SQLite")
    world = build_world()
    client = login_as(world.user(Role.LINK_WORKER))
    counts = [
        (statement, parameters)
        for statement, parameters in _statements_of(client, "/")
        if "count(" in statement and "assigned_to_id" in statement
    ]
    assert len(counts) == 1, "the home page counts the link worker's own referrals once"
    statement, parameters = counts[0]
    with db.engine.connect() as connection:
        plan = [
            row[-1]
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ]
    on_referral = [step for step in plan if " referral " in f" {step} "]
    assert on_referral, plan
    assert all("COVERING INDEX ix_referral_assigned_to_id_status" in s for s in on_referral), plan
