"""Returns as records: provisional before registers close, made final when they do, marked when
a register changes after them, and commissioners told when one is regenerated."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, select

from referrals.auth.models import OrganisationKind, Role
from referrals.courses.models import CourseSession
from referrals.courses.services import save_register
from referrals.extensions import db
from referrals.notifications.models import Notification
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period
from referrals.reports.services import (
    FINAL_REASON,
    REGENERATED_KIND,
    make_return,
    regenerate_return,
)
from referrals.scheduler.jobs import MONTHLY_RETURNS, execute
from tests import factories
from tests.factories import make_contract, make_course
from tests.query_counts import counting_queries

MARCH = Period(2026, 3)
BEFORE_CLOSE = date(2026, 4, 7)  # registers for 31 March may still change
DUE_DAY = date(2026, 4, 8)


def _contract(commissioner=None):
    return make_contract(
        start_date=MARCH.start,
        end_date=date(2026, 12, 31),
        **({"commissioner": commissioner} if commissioner else {}),
    )


def _notices(kind: str = REGENERATED_KIND) -> list[Notification]:
    return list(db.session.scalars(select(Notification).where(Notification.kind == kind)))


def test_a_return_made_before_registers_close_is_provisional_and_says_so(app, login_as):
    contract = _contract()
    admin = factories.make_user(Role.ADMIN)
    early = make_return(contract.id, MARCH, today=BEFORE_CLOSE, actor=admin).kpi_return
    on_time = make_return(_contract().id, MARCH, today=DUE_DAY).kpi_return
    assert early.provisional and not on_time.provisional

    page = login_as(admin).get(f"/returns/{early.id}").get_data(as_text=True)
    assert "Provisional" in page and "may still change" in page
    page = login_as(admin).get(f"/returns/{on_time.id}").get_data(as_text=True)
    assert "Provisional" not in page


def test_the_scheduled_job_makes_a_provisional_return_final_once_registers_close(app):
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    contract = _contract(commissioner)
    make_return(contract.id, MARCH, today=BEFORE_CLOSE, actor=factories.make_user(Role.ADMIN))
    db.session.commit()

    run = execute(app, MONTHLY_RETURNS, DUE_DAY)

    assert run.detail == "0 returns made, 1 provisional made final"
    versions = db.session.scalars(select(KpiReturn).order_by(KpiReturn.version)).all()
    assert [(v.version, v.provisional, v.is_current) for v in versions] == [
        (1, True, False),
        (2, False, True),
    ]
    assert versions[1].reason == FINAL_REASON and versions[1].generated_by_job == MONTHLY_RETURNS
    (notice,) = _notices()
    assert notice.organisation_id == commissioner.id and notice.link == f"/returns/{versions[1].id}"


def test_a_register_saved_after_the_return_marks_it_changed_for_admins(app, login_as):
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    contract = _contract(commissioner)
    other = _contract()
    course = make_course(contract=contract, start=date(2026, 3, 2), sessions=4)
    admin = factories.make_user(Role.ADMIN)
    ours = make_return(contract.id, MARCH, today=DUE_DAY).kpi_return
    theirs = make_return(other.id, MARCH, today=DUE_DAY).kpi_return
    everything = make_return(None, MARCH, today=DUE_DAY).kpi_return
    april = make_return(contract.id, Period(2026, 4), today=date(2026, 5, 8)).kpi_return
    assert ours.registers_changed_at is None
    session = db.session.scalar(
        select(CourseSession).where(CourseSession.course_id == course.id).limit(1)
    )

    save_register(admin, session, [], today=date(2026, 5, 20))  # an admin's late correction
    db.session.commit()

    db.session.expire_all()
    assert ours.registers_changed_at is not None and everything.registers_changed_at is not None
    assert theirs.registers_changed_at is None and april.registers_changed_at is None
    page = login_as(admin).get(f"/returns/{ours.id}").get_data(as_text=True)
    assert "Changed since it was made" in page
    assert f"/returns/{ours.id}/regenerate" in page.split("Changed since it was made")[1]
    seen_by_commissioner = login_as(Role.COMMISSIONER, organisation=commissioner).get(
        f"/returns/{ours.id}"
    )
    assert seen_by_commissioner.status_code == 200
    assert "Changed since it was made" not in seen_by_commissioner.get_data(as_text=True)

    remade = regenerate_return(admin, contract.id, MARCH, "Late register", today=date(2026, 5, 20))
    page = login_as(admin).get(f"/returns/{remade.id}").get_data(as_text=True)
    assert remade.registers_changed_at is None and "Changed since it was made" not in page


def test_commissioners_are_told_when_a_return_they_see_is_regenerated(app, login_as):
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    contract = _contract(commissioner)
    admin = factories.make_user(Role.ADMIN)
    make_return(contract.id, MARCH, today=DUE_DAY)
    make_return(None, MARCH, today=DUE_DAY)

    remade = regenerate_return(admin, contract.id, MARCH, "Registers corrected", today=DUE_DAY)
    regenerate_return(admin, None, MARCH, "Registers corrected", today=DUE_DAY)

    (notice,) = _notices()  # the all-activity return is not theirs to see
    assert notice.organisation_id == commissioner.id and notice.link == f"/returns/{remade.id}"
    inbox = login_as(Role.COMMISSIONER, organisation=commissioner).get("/messages/")
    text = inbox.get_data(as_text=True)
    assert "March 2026 KPI return" in text and "Registers corrected" in text


# Computing holds no write lock --------------------------------------------------------------


@contextmanager
def _writes_from_another_connection_while_computing() -> Iterator[list[str]]:
    """While the engine reads attendance records (in the middle of a return's computation),
    another connection to the same SQLite database tries to take the write lock and write, not
    waiting at all. Yields what each attempt gave: "written", or SQLite's error."""
    outcomes: list[str] = []
    path = db.engine.url.database

    def write_now(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM attendance" not in statement or outcomes:
            return
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE organisation SET name = name")
            other.execute("COMMIT")
            outcomes.append("written")
        except sqlite3.OperationalError as error:
            outcomes.append(str(error))
        finally:
            other.close()

    event.listen(db.engine, "before_cursor_execute", write_now)
    try:
        yield outcomes
    finally:
        event.remove(db.engine, "before_cursor_execute", write_now)


def _sqlite_only() -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's one write lock; PostgreSQL writers do not queue behind readers")


def test_the_regenerate_command_computes_while_others_write(app, runner):
    _sqlite_only()
    admin = factories.make_user(Role.ADMIN)
    contract = _contract()
    make_return(contract.id, MARCH, today=DUE_DAY)
    db.session.commit()

    with _writes_from_another_connection_while_computing() as outcomes:
        result = runner.invoke(
            args=[
                "kpi", "regenerate", "--period", MARCH.key, "--contract", str(contract.id),
                "--reason", "A late register", "--by", admin.email,
            ]
        )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert outcomes == ["written"]
    assert "is version 2" in result.output


def test_the_monthly_job_computes_while_others_write(app):
    _sqlite_only()
    _contract()
    db.session.commit()

    with _writes_from_another_connection_while_computing() as outcomes:
        run = execute(app, MONTHLY_RETURNS, DUE_DAY)

    assert run.detail == "1 return made"
    assert outcomes == ["written"]


def test_the_monthly_job_computes_section_a_once_for_every_contract_of_a_month(app):
    for _ in range(3):
        _contract()
    db.session.commit()
    with counting_queries() as statements:
        run = execute(app, MONTHLY_RETURNS, DUE_DAY)

    assert run.detail == "3 returns made"
    # A1 (one statement), and A2 with A3 (one statement): once for March, not once for each
    # of the three contracts.
    section_a = [s for s in statements if "referral.referrer_type" in s or "to_status" in s]
    assert len([s for s in section_a if "SELECT" in s and "referral_transition" in s]) == 1
    assert len([s for s in section_a if "referral.referrer_type" in s]) == 1
