"""The dates the service accepts: one set of rules (referrals.dates) that the services enforce,
so pages, API, CLI and jobs cannot disagree; and a contract stored with absurd dates bounds the
catch-up and breaks no page."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select

from referrals import clock
from referrals.auth.models import OrganisationKind, Role
from referrals.courses.models import Contract, Course, CourseSession
from referrals.courses.services import (
    ContractFields,
    CourseRuleBroken,
    enrol,
    move_session,
    record_wellbeing,
    save_contract,
)
from referrals.dates import (
    EARLIEST,
    MAX_CONTRACT_MONTHS,
    DateRefused,
    check_contract,
    check_received,
    check_within_contract,
)
from referrals.extensions import db
from referrals.intake.models import Referral
from referrals.outcomes.scoring import Instrument, Timepoint
from referrals.reports.models import KpiReturn
from referrals.reports.periods import InvalidPeriod, Period, check_reportable, months_to_report
from referrals.reports.services import ReturnRefused, make_return, missing_returns
from referrals.scheduler.jobs import MONTHLY_RETURNS, execute
from tests import factories
from tests.course_helpers import assessed_referral
from tests.factories import make_contract, make_course
from tests.intake_helpers import make_referral, nhs_numbers

TODAY = date(2026, 12, 7)  # the rules are pure: a fixed day, never the clock


# The rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "field", "message"),
    [
        (date(1, 1, 1), date(9999, 12, 31), "start_date", "on or after 1 January 2000"),
        (date(1999, 12, 31), date(2000, 6, 30), "start_date", "on or after 1 January 2000"),
        (date(2036, 12, 8), date(2037, 3, 31), "start_date", "no more than 10 years from today"),
        (date(2026, 4, 1), date(2026, 3, 31), "end_date", "on or after the start date"),
        (date(2026, 4, 1), date(2036, 4, 1), "end_date", "end it by 31 March 2036"),
        (date(9990, 1, 1), date(9999, 12, 31), "start_date", "no more than 10 years from today"),
    ],
)
def test_contract_terms_outside_the_bounds_are_refused_at_their_field(start, end, field, message):
    with pytest.raises(DateRefused, match=message) as refused:
        check_contract(start, end, TODAY)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (EARLIEST, date(2009, 12, 31)),  # the first day, ten years to the day
        (date(2036, 12, 7), date(2046, 12, 6)),  # ten years from today, for ten years
        (date(2028, 2, 29), date(2038, 2, 27)),  # from a leap day
        (date(2026, 4, 1), date(2026, 4, 1)),  # a single day
    ],
)
def test_contract_terms_within_the_bounds_are_accepted(start, end):
    check_contract(start, end, TODAY)


def test_a_received_date_runs_from_the_first_day_to_today():
    assert check_received(EARLIEST, TODAY) == EARLIEST
    assert check_received(TODAY, TODAY) == TODAY
    with pytest.raises(DateRefused, match="Date received must be on or after 1 January 2000"):
        check_received(date(1, 1, 1), TODAY)
    with pytest.raises(DateRefused, match="Date received must be today or in the past"):
        check_received(date(2026, 12, 8), TODAY)


def test_sessions_fall_inside_their_contract():
    check_within_contract(
        date(2026, 4, 1), date(2027, 3, 31), date(2026, 4, 1), date(2027, 3, 31), field="f"
    )
    for first, last in (
        (date(2026, 3, 31), date(2026, 6, 1)),
        (date(2027, 1, 5), date(2027, 4, 1)),
    ):
        with pytest.raises(DateRefused):
            check_within_contract(first, last, date(2026, 4, 1), date(2027, 3, 31), field="f")


def test_periods_before_the_first_month_are_refused():
    with pytest.raises(InvalidPeriod, match="from 2000-01"):
        Period.parse("1999-12")
    with pytest.raises(InvalidPeriod):
        check_reportable(Period(1, 1), TODAY)
    check_reportable(Period(2000, 1), TODAY)


@pytest.mark.parametrize(
    ("start", "end", "first", "last", "months"),
    [
        (date(1, 1, 1), date(9999, 12, 31), "2016-11", "2026-11", MAX_CONTRACT_MONTHS),
        (date(1999, 6, 1), date(2000, 3, 31), "2000-01", "2000-03", 3),
        (date(2026, 4, 15), date(2027, 3, 31), "2026-04", "2026-11", 8),
        (date(2026, 12, 1), date(2027, 3, 31), None, None, 0),  # nothing finished yet
        (date(9990, 1, 1), date(9999, 12, 31), None, None, 0),
    ],
)
def test_the_months_to_report_are_bounded_whatever_is_stored(start, end, first, last, months):
    periods = months_to_report(start, end, TODAY)
    assert len(periods) == months
    if periods:
        assert (periods[0].key, periods[-1].key) == (first, last)


# The services: the one place every way in passes through -------------------------------------


def test_the_contract_service_refuses_an_absurd_term(app):
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    fields = ContractFields("Forever", commissioner, date(1, 1, 1), date(9999, 12, 31))
    with pytest.raises(CourseRuleBroken, match="1 January 2000") as broken:
        save_contract(None, fields, today=TODAY)
    assert broken.value.field == "start_date"
    assert db.session.scalar(select(func.count()).select_from(Contract)) == 0


def test_the_referral_service_refuses_a_received_date_out_of_bounds(app):
    link_worker = factories.make_user(Role.LINK_WORKER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    with pytest.raises(DateRefused, match="on or after 1 January 2000"):
        # make_referral sends it through create_referral, as the CLI's demo data and jobs do
        make_referral(
            link_worker, practice, nhs=next(nhs_numbers()), received_on=date(1, 1, 1), today=TODAY
        )
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0


def test_wellbeing_and_moved_sessions_are_bounded_by_the_services(app):
    today = clock.today()
    contract = make_contract(start_date=today, end_date=today + timedelta(days=30))
    course = make_course(contract=contract, start=today + timedelta(days=7), sessions=1)
    referral = assessed_referral()
    link_worker = factories.make_user(Role.LINK_WORKER)
    enrolment = enrol(link_worker, referral, course, today=today)
    with pytest.raises(CourseRuleBroken, match="on or after 1 January 2000") as broken:
        record_wellbeing(
            link_worker,
            enrolment,
            Instrument.SWEMWBS,
            Timepoint.BASELINE,
            [3] * 7,
            recorded_on=date(1, 1, 1),
            today=today,
        )
    assert broken.value.field == "recorded_on"
    session = db.session.scalars(
        select(CourseSession).where(CourseSession.course_id == course.id)
    ).one()
    later = today + timedelta(days=31)
    with pytest.raises(CourseRuleBroken, match="the contract ends") as broken:
        move_session(None, session, later, time(10), today=today)
    assert broken.value.field == "date"


def test_a_course_under_a_contract_ending_2027_cannot_run_in_2028(app):
    contract = make_contract(start_date=date(2026, 4, 1), end_date=date(2027, 3, 31))
    with pytest.raises(CourseRuleBroken, match="31 March 2027") as broken:
        make_course(contract=contract, start=date(2028, 1, 4))
    assert broken.value.field == "schedule.start_date"
    assert db.session.scalar(select(func.count()).select_from(Course)) == 0


def test_a_return_is_never_made_for_a_month_before_the_first(app):
    contract = make_contract(start_date=date(2026, 4, 1), end_date=date(2027, 3, 31))
    with pytest.raises((InvalidPeriod, ReturnRefused)):
        make_return(contract.id, Period(1, 1), today=TODAY)


# A contract stored with absurd dates --------------------------------------------------------


def _stored_forever_contract() -> Contract:
    """As a contract saved before the bounds existed, or written to the database directly."""
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    contract = Contract(
        name="Forever",
        commissioner=commissioner,
        start_date=date(1, 1, 1),
        end_date=date(9999, 12, 31),
        targets={},
    )
    db.session.add(contract)
    db.session.commit()
    return contract


def test_the_catch_up_for_an_absurd_stored_contract_is_bounded(app):
    contract = _stored_forever_contract()
    registers_closed = date(2026, 12, 15)  # November's registers closed on the 8th
    wanted = missing_returns(registers_closed)
    assert len(wanted) == MAX_CONTRACT_MONTHS
    assert {contract_id for contract_id, _ in wanted} == {contract.id}
    assert min(p for _, p in wanted) >= Period.containing(EARLIEST)
    assert max(p for _, p in wanted) == Period(2026, 11)  # last month, never later
    db.session.commit()  # the job runs in its own transaction

    # Run the job as of a day early in the service's first year: exactly its finished months.
    run = execute(app, MONTHLY_RETURNS, today=date(2000, 4, 15))
    assert (run.outcome, run.detail) == ("succeeded", "3 returns made")
    made = db.session.scalars(select(KpiReturn.period).order_by(KpiReturn.period)).all()
    assert made == ["2000-01", "2000-02", "2000-03"]


def test_pages_still_answer_with_an_absurd_contract_and_a_return_for_year_one(
    app, login_as, api_client
):
    contract = _stored_forever_contract()
    execute(app, MONTHLY_RETURNS, today=date(2000, 3, 2))  # makes January and February 2000
    # A return the unbounded catch-up of old made, for January of year 1.
    made = db.session.scalars(select(KpiReturn)).first()
    assert made is not None
    db.session.add(
        KpiReturn(
            scope_key=made.scope_key,
            contract_id=contract.id,
            period="0001-01",
            spec_version=made.spec_version,
            figures=made.figures,
            generated_by_job=MONTHLY_RETURNS,
        )
    )
    db.session.commit()

    commissioner = login_as(Role.COMMISSIONER, organisation=contract.commissioner)
    home = commissioner.get("/")
    assert home.status_code == 200
    returns = commissioner.get("/returns/")
    assert returns.status_code == 200
    assert "Forever" in returns.get_data(as_text=True)
    admin = login_as(Role.ADMIN)
    for path in ("/returns/", "/admin/contracts", f"/admin/contracts/{contract.id}/edit"):
        assert admin.get(path).status_code == 200, path

    client, headers = api_client(Role.ADMIN)
    response = client.get("/api/v1/kpi/returns", headers=headers)
    assert response.status_code == 200
    assert {item["period"] for item in response.get_json()["items"]} <= {"2000-01", "2000-02"}
    response = client.get("/api/v1/contracts", headers=headers)
    assert response.status_code == 200
