"""Admin catalogue: contracts with KPI targets, venues and courses, admins only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, time, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from referrals import clock
from referrals.auth.models import Organisation, OrganisationKind, Role
from referrals.courses.kpi_targets import TARGETABLE_BY_CODE, TARGETABLE_KPIS
from referrals.courses.models import Contract, Course, CourseSession, Venue
from referrals.courses.schedule import Frequency, Schedule
from referrals.courses.services import (
    save_contract,
)
from referrals.extensions import db
from referrals.intake.models import Referral
from referrals.vocab import ArtForm, Pathway
from tests import factories
from tests.conftest import csrf_token, submit
from tests.factories import make_contract, make_course, make_venue
from tests.intake_helpers import referral_form
from tests.pages import (
    assert_field_error,
    assert_labelled_without_inline_code,
    audit_events,
    count,
    value_kept,
)
from tests.query_counts import queries_for

NON_ADMIN_ROLES = [Role.REFERRER, Role.LINK_WORKER, Role.ARTIST, Role.COMMISSIONER]
JUNK = {
    "name": "\x00" * 3,
    "title": "\x00\x01",
    "commissioner": ["1", "2"],
    "provider": "²",
    "contract": "-1",
    "venue": "99999999999999999999999",
    "art_form": "1e9",
    "capacity": "ten",
    "cost_per_session": "£-3.999",
    "start_date": "31/02/2026",
    "end_date": "\u202e" * 50,
    "start_time": "25:61",
    "duration_minutes": "9" * 400,
    "frequency": "daily",
    "sessions": "0x10",
    "taster_sessions": "-",
    "pathways": ["nonsense", "\x00"],
    "lead_artists": ["abc", "-5"],
    "min_age": "old",
    "max_age": "1.5",
    "postcode": "\x00" * 10,
    "address": "x" * 5000,
    "accessibility": "\x07",
    "target_B1_minimum": "lots",
    "target_B6_stretch": "NaN",
}


# Set-up --------------------------------------------------------------------------------------


def make_commissioner(name: str = "Severnvale ICB") -> Organisation:
    return factories.make_organisation(OrganisationKind.COMMISSIONER, name=name)


def make_provider(name: str = "Riverside Arts") -> Organisation:
    return factories.make_organisation(OrganisationKind.PROVIDER, name=name)


@pytest.fixture()
def catalogue(app: Flask) -> dict[str, Any]:
    """A commissioner, a provider with two artists, another provider's artist, a contract and a
    venue: everything a course form needs."""
    commissioner = make_commissioner()
    provider = make_provider()
    lead = factories.make_user(Role.ARTIST, organisation=provider, name="Aled Jones")
    second = factories.make_user(Role.ARTIST, organisation=provider, name="Beth Gibbons")
    elsewhere = factories.make_user(Role.ARTIST, name="Cerys Matthews")
    contract = make_contract(
        "Severnvale Arts 2026", commissioner=commissioner, start_date=date(2026, 1, 1)
    )
    venue = make_venue()
    db.session.commit()
    return {
        "commissioner": commissioner,
        "provider": provider,
        "lead": lead,
        "second": second,
        "elsewhere": elsewhere,
        "contract": contract,
        "venue": venue,
    }


def contract_form(c: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Stroud Wellbeing Contract",
        "commissioner": str(c["commissioner"].id),
        "start_date": "1/4/2026",
        "end_date": "31 3 2027",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def course_form(c: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "Singing for Better Breathing",
        "description": "A choir for people with COPD.\r\nNo experience needed.",
        "art_form": "singing",
        "provider": str(c["provider"].id),
        "contract": str(c["contract"].id),
        "venue": str(c["venue"].id),
        "pathways": ["copd_asthma", "social_isolation"],
        "min_age": "18",
        "max_age": "",
        "capacity": "12",
        "cost_per_session": "33.00",
        "lead_artists": [str(c["lead"].id)],
        "start_date": "3/3/2026",
        "start_time": "10:00",
        "duration_minutes": "120",
        "frequency": "weekly",
        "sessions": "8",
        "taster_sessions": "2",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


# Contracts -----------------------------------------------------------------------------------


def test_the_targetable_kpis_carry_the_specs_names() -> None:
    codes = [kpi.code for kpi in TARGETABLE_KPIS]
    assert {"A1", "B1", "B2", "B4", "B5", "B6", "B7", "C1", "C4", "C5"} <= set(codes)
    assert len(codes) == len(set(codes))
    assert TARGETABLE_BY_CODE["B1"].name == (
        "Number of people supported to access arts or cultural groups/activities"
    )
    assert TARGETABLE_BY_CODE["B6"].unit == "percent" and TARGETABLE_BY_CODE["B6"].highest == 100


def test_admin_adds_a_contract_with_targets(admin: Any, catalogue: dict[str, Any]) -> None:
    response = submit(
        admin,
        "/admin/contracts/new",
        contract_form(
            catalogue,
            name="  Stroud Wellbeing Contract ",
            target_B1_minimum="40",
            target_B1_expected="50",
            target_B1_stretch=" 60 ",
            target_B6_minimum="70",
            target_B6_expected="75.5",
            target_B6_stretch="80",
            target_C4_minimum="0",
            target_C4_expected="1.5",
            target_C4_stretch="3",
            value="£120000",
            target_B2_year_to_date_minimum="20",
            target_B2_year_to_date_expected="30",
            target_B2_year_to_date_stretch="40",
        ),
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/contracts"
    contract = db.session.scalar(
        select(Contract).where(Contract.name == "Stroud Wellbeing Contract")
    )
    assert contract is not None
    assert contract.commissioner_id == catalogue["commissioner"].id
    assert (contract.start_date, contract.end_date) == (date(2026, 4, 1), date(2027, 3, 31))
    assert contract.targets == {
        "B1": {"month": {"minimum": 40, "expected": 50, "stretch": 60}},
        "B6": {"month": {"minimum": 70.0, "expected": 75.5, "stretch": 80.0}},
        "C4": {"month": {"minimum": 0.0, "expected": 1.5, "stretch": 3.0}},
        "B2": {"year_to_date": {"minimum": 20, "expected": 30, "stretch": 40}},
    }
    assert isinstance(contract.targets["B1"]["month"]["minimum"], int)
    assert contract.value_pence == 120_000_00
    saved = audit_events("contract.saved", contract.id)
    assert saved and saved[0].actor_id == admin.user.id

    page = admin.get("/admin/contracts").get_data(as_text=True)
    assert "Stroud Wellbeing Contract has been added" in page
    row = page[page.index("Stroud Wellbeing Contract</a>") :]
    assert "Severnvale ICB" in row and "1 Apr 2026" in row and "31 Mar 2027" in row


def test_the_contract_list_counts_courses(admin: Any, catalogue: dict[str, Any]) -> None:
    make_course(title="One", contract=catalogue["contract"], provider=catalogue["provider"])
    make_course(title="Two", contract=catalogue["contract"], provider=catalogue["provider"])
    db.session.commit()
    page = admin.get("/admin/contracts").get_data(as_text=True)
    contract = catalogue["contract"]
    assert re.search(
        rf'href="/admin/courses\?contract={contract.id}">2<span class="nhsuk-u-visually-hidden">',
        page,
    )
    filtered = admin.get(f"/admin/courses?contract={contract.id}").get_data(as_text=True)
    assert ">One</a>" in filtered and ">Two</a>" in filtered


def test_admin_edits_a_contract_and_clears_a_target(admin: Any, catalogue: dict[str, Any]) -> None:
    contract = make_contract(
        "Old name",
        commissioner=catalogue["commissioner"],
        start_date=date(2026, 4, 1),
        targets={
            "B1": {"minimum": 40, "expected": 50, "stretch": 60},
            "B4": {"minimum": 8, "expected": 10, "stretch": 12},
        },
    )
    db.session.commit()
    url = f"/admin/contracts/{contract.id}/edit"
    page = admin.get(url).get_data(as_text=True)
    assert value_kept(page, "target_B1_expected", "50")
    assert value_kept(page, "start_date", "01/04/2026")

    response = submit(
        admin,
        url,
        contract_form(
            catalogue,
            name="New name",
            end_date="30/9/2026",
            target_B1_minimum="45",
            target_B1_expected="50",
            target_B1_stretch="60",
        ),
    )
    assert response.status_code == 302
    db.session.refresh(contract)
    assert contract.name == "New name"
    assert contract.end_date == date(2026, 9, 30)
    # Stored per span now; codes the targets rule does not know are not kept.
    assert contract.targets == {"B1": {"month": {"minimum": 45, "expected": 50, "stretch": 60}}}
    assert "New name has been updated" in admin.get("/admin/contracts").get_data(as_text=True)


def test_a_contract_keeps_its_name_on_edit_but_not_anothers(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    contract = catalogue["contract"]
    url = f"/admin/contracts/{contract.id}/edit"
    assert submit(admin, url, contract_form(catalogue, name=contract.name)).status_code == 302
    make_contract("Taken Contract", commissioner=catalogue["commissioner"])
    db.session.commit()
    response = submit(admin, url, contract_form(catalogue, name="taken contract"))
    assert_field_error(response, "name", "A contract with this name already exists")
    db.session.refresh(contract)
    assert contract.name == "Severnvale Arts 2026"


@pytest.mark.parametrize(
    ("changes", "field_id", "message"),
    [
        ({"name": ""}, "name", "Enter the contract&#39;s name"),
        ({"name": "Arts\x00Contract"}, "name", "Name must not contain control characters"),
        ({"name": "x" * 201}, "name", "Name must be 200 characters or fewer"),
        ({"commissioner": ""}, "commissioner", "Select the commissioner"),
        ({"commissioner": "99999"}, "commissioner", "Select a commissioner from the list"),
        ({"commissioner": "abc"}, "commissioner", "Select the commissioner"),
        ({"start_date": ""}, "start_date", "Enter the start date"),
        ({"start_date": "31/2/2026"}, "start_date", "Enter a real start date"),
        (
            {"start_date": "1/4/1926"},
            "start_date",
            "The start date must be on or after 1 January 2000",
        ),
        (
            {"start_date": "1/4/2026", "end_date": "1/4/2036"},
            "end_date",
            "A contract runs for at most 10 years: end it by 31 March 2036",
        ),
        (
            {"end_date": "31/3/2026"},
            "end_date",
            "The end date must be on or after the start date",
        ),
        (
            {"target_B1_minimum": "-1", "target_B1_expected": "50", "target_B1_stretch": "60"},
            "target_B1_minimum",
            "The B1 month minimum target must be 0 or more",
        ),
        (
            {"target_B1_minimum": "lots", "target_B1_expected": "50", "target_B1_stretch": "60"},
            "target_B1_minimum",
            "Enter the B1 month minimum target as a number, like 40",
        ),
        (
            {"target_B1_minimum": "40.5", "target_B1_expected": "50", "target_B1_stretch": "60"},
            "target_B1_minimum",
            "The B1 month minimum target must be a whole number",
        ),
        (
            {"target_B1_minimum": "60", "target_B1_expected": "50", "target_B1_stretch": "70"},
            "target_B1_expected",
            "The B1 month expected target must be at least the minimum (60)",
        ),
        (
            {"target_B4_minimum": "8", "target_B4_expected": "10", "target_B4_stretch": "9"},
            "target_B4_stretch",
            "The B4 month stretch target must be at least the expected target (10)",
        ),
        (
            {"target_B5_minimum": "100"},
            "target_B5_expected",
            "Enter all three B5 month targets (minimum, expected and stretch), or none",
        ),
        (
            {"target_B6_minimum": "70", "target_B6_expected": "80", "target_B6_stretch": "101"},
            "target_B6_stretch",
            "The B6 month stretch target must be 100 or less",
        ),
        ({"value": "-1"}, "value", "Value of the contract must be £0 or more"),
        ({"value": "lots"}, "value", "Enter the value of the contract in pounds"),
        (
            {"target_C4_minimum": "1.255", "target_C4_expected": "2", "target_C4_stretch": "3"},
            "target_C4_minimum",
            "The C4 month minimum target can have at most 2 decimal places",
        ),
        (
            {"target_B2_minimum": "5", "target_B2_expected": "10", "target_B2_stretch": "15"},
            "target_B2_minimum",
            "A minimum target of 1 to 7 for B2 month would rate a figure published as *. Set "
            "a year-to-date target instead",
        ),
        (
            {"target_A2_minimum": "10", "target_A2_expected": "15", "target_A2_stretch": "20"},
            "target_A2_expected",
            "The A2 month expected target must be at most the minimum (10): lower is better for A2",
        ),
    ],
)
def test_bad_contract_input_is_shown_at_the_field_and_nothing_is_stored(
    admin: Any, catalogue: dict[str, Any], changes: dict[str, Any], field_id: str, message: str
) -> None:
    before = count(Contract)
    data = contract_form(catalogue, **changes)
    response = submit(admin, "/admin/contracts/new", data)
    page = assert_field_error(response, field_id, message)
    assert count(Contract) == before
    # The rest of what was typed is still there.
    if "start_date" not in changes:
        assert value_kept(page, "start_date", "1/4/2026")
    for name, value in changes.items():
        if name.startswith("target_") and value:
            assert value_kept(page, name, value), name


def test_a_non_commissioner_organisation_cannot_fund_a_contract(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    response = submit(
        admin,
        "/admin/contracts/new",
        contract_form(catalogue, commissioner=str(catalogue["provider"].id)),
    )
    assert_field_error(response, "commissioner", "Select a commissioner from the list")
    assert count(Contract, Contract.name == "Stroud Wellbeing Contract") == 0


# Venues --------------------------------------------------------------------------------------


def test_admin_adds_and_edits_a_venue(admin: Any) -> None:
    response = submit(
        admin,
        "/admin/venues/new",
        {
            "name": " The Museum in the Park ",
            "address": "Stratford Park\r\nStroud",
            "postcode": " gl5  4as ",
            "accessibility": "Step-free access.\r\nHearing loop in the studio.",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/venues"
    venue = db.session.scalar(select(Venue).where(Venue.name == "The Museum in the Park"))
    assert venue is not None
    assert venue.postcode == "GL5 4AS"
    assert venue.address == "Stratford Park\r\nStroud"
    assert audit_events("venue.created", venue.id)
    page = admin.get("/admin/venues").get_data(as_text=True)
    assert "The Museum in the Park has been added" in page and "GL5 4AS" in page

    url = f"/admin/venues/{venue.id}/edit"
    form_page = admin.get(url).get_data(as_text=True)
    assert value_kept(form_page, "postcode", "GL5 4AS")
    assert "Hearing loop in the studio." in form_page
    response = submit(
        admin,
        url,
        {"name": "Museum in the Park", "address": "Stratford Park, Stroud", "postcode": "GL54AS"},
    )
    assert response.status_code == 302
    db.session.refresh(venue)
    assert (venue.name, venue.postcode, venue.accessibility) == (
        "Museum in the Park",
        "GL5 4AS",
        "",
    )
    assert audit_events("venue.updated", venue.id)[0].actor_id == admin.user.id


@pytest.mark.parametrize(
    ("changes", "field_id", "message"),
    [
        ({"name": "  "}, "name", "Enter the venue&#39;s name"),
        ({"name": "Hall\x00"}, "name", "Name must not contain control characters"),
        ({"address": ""}, "address", "Enter the venue&#39;s address"),
        ({"address": "1 Street\x1b[2J"}, "address", "Address must not contain control characters"),
        ({"address": "x" * 1001}, "address", "Address must be 1,000 characters or fewer"),
        ({"postcode": ""}, "postcode", "Enter the postcode"),
        ({"postcode": "NOT A CODE"}, "postcode", "Enter a real UK postcode, like GL1 2AB"),
        ({"postcode": "GL1\x002AB"}, "postcode", "Enter a real UK postcode, like GL1 2AB"),
        (
            {"accessibility": "y" * 4001},
            "accessibility",
            "Accessibility information must be 4,000 characters or fewer",
        ),
    ],
)
def test_bad_venue_input_is_shown_at_the_field_and_nothing_is_stored(
    admin: Any, changes: dict[str, Any], field_id: str, message: str
) -> None:
    data = {"name": "Old Town Hall", "address": "High Street\nStroud", "postcode": "GL5 1AE"}
    data.update(changes)
    response = submit(admin, "/admin/venues/new", data)
    page = assert_field_error(response, field_id, message)
    assert count(Venue) == 0
    if "name" not in changes:
        assert value_kept(page, "name", "Old Town Hall")


def test_a_bad_venue_edit_changes_nothing(admin: Any) -> None:
    venue = make_venue("Old Town Hall", postcode="GL5 1AE")
    db.session.commit()
    response = submit(
        admin,
        f"/admin/venues/{venue.id}/edit",
        {"name": "New Hall", "address": "High Street", "postcode": "nowhere"},
    )
    page = assert_field_error(response, "postcode", "Enter a real UK postcode, like GL1 2AB")
    assert value_kept(page, "name", "New Hall")
    db.session.refresh(venue)
    assert (venue.name, venue.postcode) == ("Old Town Hall", "GL5 1AE")
    assert not audit_events("venue.updated")


# Courses -------------------------------------------------------------------------------------


def test_admin_adds_a_course_and_its_sessions_are_created(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    response = submit(admin, "/admin/courses/new", course_form(catalogue))
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/courses"
    course = db.session.scalar(select(Course))
    assert course is not None
    assert course.title == "Singing for Better Breathing"
    assert course.description == "A choir for people with COPD.\r\nNo experience needed."
    assert course.art_form is ArtForm.SINGING
    assert (course.provider_id, course.contract_id, course.venue_id) == (
        catalogue["provider"].id,
        catalogue["contract"].id,
        catalogue["venue"].id,
    )
    assert course.pathways == [Pathway.COPD_ASTHMA.value, Pathway.SOCIAL_ISOLATION.value]
    assert (course.min_age, course.max_age, course.capacity) == (18, None, 12)
    assert course.cost_per_session_pence == 3300
    assert course.participant_fee_pence is None  # free unless a fee is given
    assert [u.id for u in course.lead_artists] == [catalogue["lead"].id]
    assert (course.start_time, course.duration_minutes, course.frequency) == (
        time(10),
        120,
        Frequency.WEEKLY,
    )
    assert (course.session_count, course.taster_count) == (8, 2)

    sessions = db.session.scalars(
        select(CourseSession)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.sequence)
    ).all()
    assert [s.date for s in sessions] == [date(2026, 3, 3) + timedelta(weeks=n) for n in range(10)]
    assert [s.is_taster for s in sessions] == [True, True] + [False] * 8
    assert {(s.start_time, s.duration_minutes) for s in sessions} == {(time(10), 120)}
    assert audit_events("course.created", course.id)[0].actor_id == admin.user.id

    page = admin.get("/admin/courses").get_data(as_text=True)
    assert "Singing for Better Breathing has been added with 10 sessions from 3 March 2026" in page
    row = page[page.index("Singing for Better Breathing</a>") :]
    for text in ("Riverside Arts", "Severnvale Arts 2026", "Singing", "3 Mar 2026", ">12<"):
        assert text in row, text


def test_fortnightly_sessions_skip_bank_holidays_and_keep_their_number(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    # Mondays from 20 April 2026, every two weeks: 4 May is the Early May bank holiday.
    response = submit(
        admin,
        "/admin/courses/new",
        course_form(
            catalogue,
            start_date="20/4/2026",
            start_time="9.30",
            duration_minutes="90",
            frequency="fortnightly",
            sessions="3",
            taster_sessions="",
            cost_per_session="£12.5",
            pathways=None,
            lead_artists=None,
            min_age="",
        ),
    )
    assert response.status_code == 302
    course = db.session.scalar(select(Course))
    assert course is not None
    assert course.cost_per_session_pence == 1250
    assert (course.pathways, course.lead_artists, course.min_age) == ([], [], None)
    dates = db.session.scalars(
        select(CourseSession.date)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.date)
    ).all()
    assert dates == [date(2026, 4, 20), date(2026, 5, 18), date(2026, 6, 1)]


def test_admin_edits_a_course_and_sees_its_schedule_read_only(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    course = make_course(
        contract=catalogue["contract"],
        provider=catalogue["provider"],
        venue=catalogue["venue"],
        lead_artists=[catalogue["lead"]],
        cost_per_session_pence=3300,
        schedule=Schedule(date(2026, 3, 3), time(10), 120, Frequency.WEEKLY, 8, 2),
    )
    db.session.commit()
    url = f"/admin/courses/{course.id}/edit"
    page = admin.get(url).get_data(as_text=True)
    assert value_kept(page, "title", "Singing for Better Breathing")
    assert value_kept(page, "cost_per_session", "33.00")
    assert (
        "Weekly on Tuesdays, 10:00 to 12:00, 8 sessions from 3 March 2026 "
        "(plus 2 taster sessions)" in page
    )
    assert "10 sessions</caption>" in page and "1 (taster)" in page
    assert 'name="start_date"' not in page and 'name="sessions"' not in page

    response = submit(
        admin,
        url,
        course_form(
            catalogue,
            title="Singing for Breathing",
            capacity="15",
            cost_per_session="35",
            lead_artists=[str(catalogue["lead"].id), str(catalogue["second"].id)],
            pathways=["copd_asthma"],
            max_age="90",
        ),
    )
    assert response.status_code == 302
    db.session.refresh(course)
    assert (course.title, course.capacity, course.cost_per_session_pence) == (
        "Singing for Breathing",
        15,
        3500,
    )
    assert {u.id for u in course.lead_artists} == {catalogue["lead"].id, catalogue["second"].id}
    assert (course.pathways, course.max_age) == (["copd_asthma"], 90)
    # The schedule and its sessions are untouched.
    assert count(CourseSession, CourseSession.course_id == course.id) == 10
    assert course.start_date == date(2026, 3, 3)
    assert audit_events("course.updated", course.id)[0].actor_id == admin.user.id


def test_a_contract_term_must_keep_its_courses_sessions_inside(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    # Ten weekly sessions from 3 March 2026: the last is on 5 May 2026.
    course = make_course(
        contract=catalogue["contract"],
        provider=catalogue["provider"],
        schedule=Schedule(date(2026, 3, 3), time(10), 120, Frequency.WEEKLY, 10),
    )
    db.session.commit()
    url = f"/admin/contracts/{catalogue['contract'].id}/edit"
    name = catalogue["contract"].name
    response = submit(
        admin, url, contract_form(catalogue, name=name, start_date="1/1/2026", end_date="30/4/2026")
    )
    assert_field_error(
        response, "end_date", "This contract has sessions until 5 May 2026: end it on or after then"
    )
    response = submit(admin, url, contract_form(catalogue, name=name, start_date="1/4/2026"))
    assert_field_error(
        response,
        "start_date",
        "This contract has sessions from 3 March 2026: start it on or before then",
    )
    db.session.refresh(catalogue["contract"])
    assert catalogue["contract"].end_date == date(2027, 3, 31)

    # Moving the course to a contract that ends before its sessions do is refused too.
    short = make_contract("Short", start_date=date(2026, 1, 1), end_date=date(2026, 4, 30))
    db.session.commit()
    response = submit(
        admin,
        f"/admin/courses/{course.id}/edit",
        course_form(catalogue, contract=str(short.id)),
    )
    assert_field_error(
        response,
        "contract",
        "Sessions must be on or before the day the contract ends (30 April 2026); "
        "the last would be on 5 May 2026",
    )
    db.session.refresh(course)
    assert course.contract_id == catalogue["contract"].id


def test_a_lead_artist_from_another_provider_is_refused_at_the_field(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    elsewhere = catalogue["elsewhere"]
    response = submit(
        admin,
        "/admin/courses/new",
        course_form(catalogue, lead_artists=[str(catalogue["lead"].id), str(elsewhere.id)]),
    )
    page = assert_field_error(
        response, "lead_artists", f"{elsewhere.name} is not an artist at Riverside Arts"
    )
    assert value_kept(page, "title", "Singing for Better Breathing")
    assert (count(Course), count(CourseSession)) == (0, 0)

    # Moving a course to another provider refuses its old leads, and changes nothing.
    course = make_course(
        contract=catalogue["contract"],
        provider=catalogue["provider"],
        venue=catalogue["venue"],
        lead_artists=[catalogue["lead"]],
    )
    other = make_provider("Moving Minds Dance")
    db.session.commit()
    response = submit(
        admin, f"/admin/courses/{course.id}/edit", course_form(catalogue, provider=str(other.id))
    )
    assert_field_error(
        response, "lead_artists", f"{catalogue['lead'].name} is not an artist at Moving Minds Dance"
    )
    db.session.refresh(course)
    assert course.provider_id == catalogue["provider"].id


@pytest.mark.parametrize(
    ("changes", "field_id", "message"),
    [
        ({"title": ""}, "title", "Enter the course&#39;s title"),
        ({"title": "Sing\x00"}, "title", "Title must not contain control characters"),
        ({"title": "S" * 201}, "title", "Title must be 200 characters or fewer"),
        ({"description": "d" * 4001}, "description", "Description must be 4,000 characters"),
        ({"art_form": "juggling"}, "art_form", "Select an art form from the list"),
        ({"provider": ""}, "provider", "Select the arts provider"),
        ({"provider": "99999"}, "provider", "Select an arts provider from the list"),
        ({"contract": "99999"}, "contract", "Select a contract from the list"),
        ({"venue": "abc"}, "venue", "Select the venue"),
        ({"pathways": ["copd_asthma", "astrology"]}, "pathways", "Select target pathways"),
        ({"lead_artists": ["99999"]}, "lead_artists", "Select lead artists from the list"),
        ({"min_age": "70", "max_age": "60"}, "min_age", "The youngest age must not be above"),
        ({"max_age": "200"}, "max_age", "Oldest age must be 120 or less"),
        ({"min_age": "eighteen"}, "min_age", "Enter the youngest age as a whole number"),
        ({"capacity": ""}, "capacity", "Enter the capacity"),
        ({"capacity": "ten"}, "capacity", "Enter the capacity as a whole number, like 12"),
        ({"capacity": "0"}, "capacity", "Capacity must be 1 or more"),
        ({"capacity": "99999999999"}, "capacity", "Enter the capacity as a whole number"),
        ({"capacity": "²"}, "capacity", "Enter the capacity as a whole number"),
        (
            {"cost_per_session": ""},
            "cost_per_session",
            "Enter the cost per session to the contract, or 0",
        ),
        (
            {"cost_per_session": "-5.00"},
            "cost_per_session",
            "Cost per session to the contract must be £0 or more",
        ),
        (
            {"cost_per_session": "33.005"},
            "cost_per_session",
            "Enter the cost per session to the contract to the nearest penny, like 33.50",
        ),
        (
            {"cost_per_session": "lots"},
            "cost_per_session",
            "Enter the cost per session to the contract in pounds",
        ),
        (
            {"cost_per_session": "20000"},
            "cost_per_session",
            "Cost per session to the contract must be £10,000 or less",
        ),
        ({"start_date": ""}, "start_date", "Enter the date of the first session"),
        ({"start_date": "30/2/2026"}, "start_date", "Enter a real date, for example 3 3 2026"),
        ({"start_date": "3/3/1999"}, "start_date", "Sessions must be on or after 1 January 2000"),
        (
            {"start_date": "2/12/2025"},
            "start_date",
            "Sessions must be on or after the day the contract starts (1 January 2026)",
        ),
        (
            {"start_date": "2/3/2027"},
            "start_date",
            "Sessions must be on or before the day the contract ends (31 March 2027); "
            "the last would be on 4 May 2027",
        ),
        ({"start_time": "25:00"}, "start_time", "Enter the start time in 24-hour format"),
        ({"start_time": ""}, "start_time", "Enter the start time, like 10:00"),
        ({"frequency": "daily"}, "frequency", "Select how often the course meets"),
        (
            {"duration_minutes": "5"},
            "duration_minutes",
            "Session length must be between 15 and 480 minutes",
        ),
        (
            {"start_time": "23:00", "duration_minutes": "120"},
            "duration_minutes",
            "A session must finish by midnight",
        ),
        ({"sessions": "0"}, "sessions", "Number of sessions must be between 1 and 200"),
        ({"sessions": "8.5"}, "sessions", "Enter the number of sessions as a whole number"),
        (
            {"taster_sessions": "11"},
            "taster_sessions",
            "Number of taster sessions must be between 0 and 10",
        ),
    ],
)
def test_bad_course_input_is_shown_at_the_field_and_nothing_is_stored(
    admin: Any, catalogue: dict[str, Any], changes: dict[str, Any], field_id: str, message: str
) -> None:
    response = submit(admin, "/admin/courses/new", course_form(catalogue, **changes))
    page = assert_field_error(response, field_id, message)
    assert (count(Course), count(CourseSession)) == (0, 0)
    if "title" not in changes:
        assert value_kept(page, "title", "Singing for Better Breathing")
    if "capacity" not in changes:
        assert value_kept(page, "capacity", "12")
    if changes.get("cost_per_session"):
        assert value_kept(page, "cost_per_session", changes["cost_per_session"])
    # Ticked boxes stay ticked.
    if "pathways" not in changes:
        assert re.search(r'value="copd_asthma"[^>]*checked', page)


def test_a_course_from_a_gp_practice_posted_by_hand_is_refused(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    db.session.commit()
    response = submit(admin, "/admin/courses/new", course_form(catalogue, provider=practice.id))
    assert_field_error(response, "provider", "Select an arts provider from the list")
    assert count(Course) == 0


def test_bad_course_edits_change_nothing(admin: Any, catalogue: dict[str, Any]) -> None:
    course = make_course(
        catalogue["provider"],
        contract=catalogue["contract"],
        venue=catalogue["venue"],
        start=date(2026, 3, 3),  # a Tuesday
        capacity=12,
    )
    db.session.commit()
    url = f"/admin/courses/{course.id}/edit"
    response = submit(admin, url, course_form(catalogue, title="Renamed", capacity="-1"))
    page = assert_field_error(response, "capacity", "Capacity must be 1 or more")
    assert value_kept(page, "title", "Renamed")
    assert "Weekly on Tuesdays" in page  # the schedule is still shown
    db.session.refresh(course)
    assert (course.title, course.capacity) == ("Singing for Better Breathing", 12)


def test_a_contract_name_taken_by_a_concurrent_request_is_shown_at_the_field(
    app: Flask, catalogue: dict[str, Any]
) -> None:
    """The unique constraint is the last word; the clash becomes a field message, not a 500."""
    from referrals.admin.catalogue import _saved
    from referrals.admin.catalogue_forms import ContractForm, commissioner_choices

    data = contract_form(catalogue, name="Race Contract")
    commissioner_id = catalogue["commissioner"].id
    with app.test_request_context("/admin/contracts/new", method="POST", data=data):
        form = ContractForm(
            meta={"csrf": False}, commissioners=commissioner_choices(), today=clock.today()
        )
        assert form.validate()
        db.session.rollback()
        with db.engine.begin() as other_request:  # another admin saves the same name first
            other_request.execute(
                Contract.__table__.insert().values(
                    name="Race Contract",
                    commissioner_id=commissioner_id,
                    start_date=date(2026, 4, 1),
                    end_date=date(2027, 3, 31),
                    targets={},
                )
            )
        saved = _saved(
            form, lambda: save_contract(None, form.contract_fields(), today=clock.today())
        )
        assert not saved
        assert form.name.errors == ["A contract with this name already exists"]
    assert count(Contract, Contract.name == "Race Contract") == 1


# Junk and unknown ids ------------------------------------------------------------------------


def _form_urls(catalogue: dict[str, Any]) -> list[str]:
    course = make_course(
        contract=catalogue["contract"], provider=catalogue["provider"], venue=catalogue["venue"]
    )
    db.session.commit()
    return [
        "/admin/contracts/new",
        f"/admin/contracts/{catalogue['contract'].id}/edit",
        "/admin/venues/new",
        f"/admin/venues/{catalogue['venue'].id}/edit",
        "/admin/courses/new",
        f"/admin/courses/{course.id}/edit",
    ]


def test_empty_and_malformed_posts_get_field_messages_never_a_500(
    admin: Any, catalogue: dict[str, Any]
) -> None:
    urls = _form_urls(catalogue)
    before = (count(Contract), count(Venue), count(Course), count(CourseSession))
    for url in urls:
        for data in ({}, JUNK):
            response = submit(admin, url, data)
            assert response.status_code == 200, (url, data)
            page = response.get_data(as_text=True)
            assert "There is a problem" in page and "<title>Error: " in page, (url, data)
    assert (count(Contract), count(Venue), count(Course), count(CourseSession)) == before


def test_posts_without_a_csrf_token_are_refused(admin: Any, catalogue: dict[str, Any]) -> None:
    for url in _form_urls(catalogue):
        response = admin.post(url, data=course_form(catalogue))
        assert response.status_code in (400, 403), url
    assert count(Course) == 1  # the one made for the list


def test_unknown_ids_are_not_found(admin: Any) -> None:
    for url in (
        "/admin/contracts/999/edit",
        "/admin/venues/999/edit",
        "/admin/courses/999/edit",
    ):
        assert admin.get(url).status_code == 404, url


@pytest.mark.parametrize(
    "url", ["/admin/courses?contract=%00&page=-1", "/admin/courses?contract=%C2%B2&page=abc"]
)
def test_list_filters_ignore_junk(admin: Any, url: str) -> None:
    assert admin.get(url).status_code == 200


# Access --------------------------------------------------------------------------------------

CATALOGUE_ENDPOINTS = {
    "admin.contracts",
    "admin.new_contract",
    "admin.edit_contract",
    "admin.venues",
    "admin.new_venue",
    "admin.edit_venue",
    "admin.courses",
    "admin.new_course",
    "admin.edit_course",
}


def _catalogue_urls(app: Flask, values: dict[str, int]) -> Iterator[tuple[str, str]]:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint in CATALOGUE_ENDPOINTS]
    assert {r.endpoint for r in rules} == CATALOGUE_ENDPOINTS
    for rule in rules:
        url = rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)[1]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, url


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_other_roles_are_refused_every_catalogue_page(
    login_as: Any, app: Flask, catalogue: dict[str, Any], role: Role
) -> None:
    course = make_course(
        contract=catalogue["contract"], provider=catalogue["provider"], venue=catalogue["venue"]
    )
    db.session.commit()
    values = {
        "contract_id": catalogue["contract"].id,
        "venue_id": catalogue["venue"].id,
        "course_id": course.id,
    }
    client = login_as(role)
    token = csrf_token(client, "/account/password")
    urls = list(_catalogue_urls(app, values))
    assert len(urls) == 15  # three lists (GET) and six forms (GET and POST)
    for method, url in urls:
        data = {"csrf_token": token, **course_form(catalogue)} if method == "POST" else None
        response = client.open(url, method=method, data=data)
        assert response.status_code == 403, (role, method, url)
    assert count(Course) == 1
    db.session.refresh(course)
    assert course.title == "Singing for Better Breathing"


def test_admins_see_courses_and_contracts_in_the_navigation(admin: Any, login_as: Any) -> None:
    page = admin.get("/").get_data(as_text=True)
    assert 'href="/admin/courses"' in page and 'href="/admin/contracts"' in page
    assert page.index('href="/admin/courses"') < page.index('href="/admin/organisations"')
    other = login_as(Role.LINK_WORKER).get("/").get_data(as_text=True)
    assert 'href="/admin/courses"' not in other and 'href="/admin/contracts"' not in other


# Markup --------------------------------------------------------------------------------------


def test_catalogue_pages_label_every_control_and_use_no_inline_code(
    admin: Any, app: Flask, catalogue: dict[str, Any]
) -> None:
    course = make_course(
        contract=catalogue["contract"], provider=catalogue["provider"], venue=catalogue["venue"]
    )
    db.session.commit()
    values = {
        "contract_id": catalogue["contract"].id,
        "venue_id": catalogue["venue"].id,
        "course_id": course.id,
    }
    for method, url in _catalogue_urls(app, values):
        if method != "GET":
            continue
        response = admin.get(url)
        assert response.status_code == 200, url
        assert_labelled_without_inline_code(response.get_data(as_text=True), url)


# Bounded queries -----------------------------------------------------------------------------


def _add_courses(n: int, catalogue: dict[str, Any]) -> None:
    for i in range(n):
        # A provider, contract and venue each, so any lazy load would show as extra queries.
        make_course(title=f"Course {count(Course) + i}", venue=make_venue(f"Venue {i}"))
    db.session.commit()


def test_list_pages_use_a_bounded_number_of_queries(admin: Any, catalogue: dict[str, Any]) -> None:
    pages = ("/admin/courses", "/admin/contracts", "/admin/venues", "/admin/courses?contract=1")
    _add_courses(3, catalogue)
    few = {url: queries_for(admin, url) for url in pages}
    _add_courses(27, catalogue)
    assert count(Course) == 30
    many = {url: queries_for(admin, url) for url in pages}
    assert few == many
    assert max(many.values()) <= 10, many
    first = admin.get("/admin/courses").get_data(as_text=True)
    assert "Showing 1 to 25 of 30" in first
    assert admin.get("/admin/courses?page=2").status_code == 200


def test_a_course_shows_its_fee_to_everyone_and_its_cost_only_to_the_contract_side(
    admin: Any, catalogue: dict[str, Any], login_as: Any
) -> None:
    submit(admin, "/admin/courses/new", course_form(catalogue, participant_fee="2.50"))
    course = db.session.scalar(select(Course))
    assert course is not None and course.participant_fee_pence == 250
    edit_page = admin.get(f"/admin/courses/{course.id}/edit").get_data(as_text=True)
    assert "Cost per session to the contract" in edit_page and value_kept(
        edit_page, "participant_fee", "2.50"
    )
    for role in Role:
        page = login_as(role).get(f"/courses/{course.id}")
        if page.status_code != 200:  # artists see their own provider's courses only
            continue
        text = page.get_data(as_text=True)
        assert "Fee to the participant" in text and "£2.50 per session" in text, role
        sees_cost = role in (Role.ADMIN, Role.COMMISSIONER)
        assert ("Cost per session to the contract" in text) is sees_cost, role
        assert ("£33.00" in text) is sees_cost, role


def test_a_control_character_is_refused_in_a_course_title_as_in_a_referral_reason(
    admin: Any, catalogue: dict[str, Any], login_as: Any
) -> None:
    """Text hygiene is one rule (`referrals.text`): what the referral form refuses, the
    catalogue's course form refuses too, at the field, storing nothing."""
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    gp = login_as(factories.make_user(Role.REFERRER, organisation=practice))
    response = submit(gp, "/referrals/new", referral_form(reason="Sing\x01ing"))
    assert_field_error(response, "reason", "must not contain control characters")
    assert count(Referral) == 0

    response = submit(admin, "/admin/courses/new", course_form(catalogue, title="Sing\x01ing"))
    assert_field_error(response, "title", "Title must not contain control characters")
    assert count(Course) == 0
