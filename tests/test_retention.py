"""Retention: pseudonymising and erasing a person leaves no identifier anywhere and the figures as
they were; the scheduled rule picks exactly the people past the retention period."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Contract,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.courses.schedule import Frequency
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.intake.models import (
    ContactAttempt,
    Conversation,
    IdempotentRequest,
    Patient,
    Referral,
    ReferralTransition,
)
from referrals.intake.validation import age_on
from referrals.notifications.models import (
    Channel,
    MessageStatus,
    Notification,
    OutboundMessage,
)
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import SWEMWBS_METRIC, Instrument, Timepoint
from referrals.reports.kpi import _age_band, compute
from referrals.reports.models import JobRun, KpiReturn
from referrals.reports.periods import Period, Scope
from referrals.reports.services import make_return
from referrals.retention import (
    REMOVED,
    ReasonRequired,
    band_preserving_birth_date,
    erase_patient,
    expired_patients,
    pseudonymise_patient,
    purge_outbound_messages,
)
from referrals.scheduler.jobs import RETENTION, execute
from referrals.vocab import ArtForm, ContactMethod, ContactOutcome, Ethnicity, Pathway, Sex
from referrals.vocab import ReferrerType as RT
from tests import factories
from tests.conftest import csrf_token

TODAY = date(2026, 7, 1)
PERIODS = [Period(2026, month) for month in (1, 2, 3, 4, 5, 6)]
D, A, N = SessionStatus.DELIVERED, AttendanceStatus.ATTENDED, AttendanceStatus.NO_SHOW

# Her identifiers, and a marker in every free-text field, as they might appear anywhere.
BORN = date(1961, 4, 23)  # 64 at her April sessions, 65 at May's: she changes D1 band
IDENTIFIERS = [
    "9434765919",
    "943 476 5919",
    "Philippa",
    "Quennell",
    "Whitcombe",
    "1961-04-23",
    "01632960123",
    "01632 960123",
    "philippa.qw@example.org",
    "LS6 2QT",
]
ALSO_TYPED = ["23/04/1961", "23 April 1961", "LS62QT"]
FREE_TEXT = [
    "SECRET-COMMS",
    "SECRET-ACCESS",
    "SECRET-REASON",
    "SECRET-RISK",
    "SECRET-EPISODE",
    "SECRET-TRANSITION",
    "SECRET-STEP-NOTE",
    "SECRET-CONTACT",
    "SECRET-MATTERS",
    "SECRET-NEXT",
    "SECRET-WITHDRAWN",
    "SECRET-REGISTER",
]
OTHER_PERSON = ["Bartholomew", "Ossington", "9990000018", "SECRET-OTHER"]


@dataclass
class Scheme:
    admin: User
    practice: Organisation
    contract_x: Contract
    contract_y: Contract
    her: Patient
    her_referral: Referral
    other: Patient


def _course(provider: Organisation, venue: Venue, contract: Contract, days: list[date]) -> Course:
    course = Course(
        title=f"Course for {contract.name}",
        art_form=ArtForm.SINGING,
        provider=provider,
        contract=contract,
        venue=venue,
        pathways=[],
        capacity=20,
        start_date=days[0],
        start_time=time(10, 0),
        duration_minutes=120,
        frequency=Frequency.WEEKLY,
        session_count=len(days),
    )
    db.session.add(course)
    for sequence, day in enumerate(days, start=1):
        db.session.add(
            CourseSession(
                course=course,
                sequence=sequence,
                date=day,
                start_time=time(10, 0),
                duration_minutes=120,
                status=D,
            )
        )
    db.session.flush()
    return course


def _attend(
    course: Course, referral: Referral, marks: str, note: str = "", **fields: Any
) -> Enrolment:
    enrolment = Enrolment(course=course, referral=referral, **fields)
    db.session.add(enrolment)
    db.session.flush()
    for index, (mark, session) in enumerate(zip(marks, course.sessions, strict=True)):
        db.session.add(
            Attendance(
                session=session,
                enrolment=enrolment,
                status=A if mark == "A" else N,
                mood_before=4 if mark == "A" else None,
                mood_after=6 + index % 3 if mark == "A" else None,
                note=note if index == 0 else "",
            )
        )
    db.session.flush()
    return enrolment


def _person(practice: Organisation, **fields: Any) -> Patient:
    values = {
        "sex": Sex.FEMALE,
        "ethnicity": Ethnicity.WHITE,
        "preferred_contact": ContactMethod.PHONE,
        "gp_practice": practice,
    }
    values.update(fields)
    patient = Patient(**values)
    db.session.add(patient)
    return patient


def _referral(
    patient: Patient,
    practice: Organisation,
    steps: list[tuple[Status, date]],
    step_texts: tuple[str, str] = ("", ""),
    **fields: Any,
) -> Referral:
    """A referral moved through `steps`; closing steps get the reason, starting the note."""
    status, on = steps[-1]
    values = {
        "referrer_type": RT.GP,
        "pathway": Pathway.SOCIAL_ISOLATION,
        "reason": "Low mood",
        "interests": [],
        "consent": True,
        "received_on": steps[0][1],
        "status": status,
        "closed_on": None if status.is_open else on,
    }
    values.update(fields)
    referral = Referral(patient=patient, gp_practice=practice, **values)
    db.session.add(referral)
    db.session.flush()
    previous = None
    for to_status, day in steps:
        db.session.add(
            ReferralTransition(
                referral_id=referral.id,
                from_status=previous,
                to_status=to_status,
                effective_on=day,
                reason=step_texts[0] if not to_status.is_open else "",
                note=step_texts[1] if to_status is Status.STARTED else "",
            )
        )
        previous = to_status
    db.session.flush()
    return referral


def build_scheme() -> Scheme:
    admin = factories.make_user(Role.ADMIN)
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    venue = Venue(name="Hall", address="1 Lane", postcode="GL1 2AB")
    contracts = [
        Contract(
            name=f"Contract {code}",
            commissioner=commissioner,
            start_date=date(2025, 4, 1),
            end_date=date(2027, 3, 31),
            targets={},
        )
        for code in "XY"
    ]
    db.session.add_all([venue, *contracts])
    db.session.flush()
    thursdays = [date(2026, 3, 12), date(2026, 3, 19), date(2026, 4, 16), date(2026, 4, 23)]
    thursdays += [date(2026, 4, 30), date(2026, 5, 14)]
    course_x = _course(provider, venue, contracts[0], thursdays)
    course_y = _course(provider, venue, contracts[1], [date(2026, 4, 2), date(2026, 5, 6)])

    her = _person(
        practice,
        nhs_number="9434765919",
        given_name="Philippa",
        family_name="Quennell-Whitcombe",
        date_of_birth=BORN,
        postcode="LS6 2QT",
        phone="01632960123",
        email="philippa.qw@example.org",
        communication_needs="SECRET-COMMS: large print",
        access_needs="SECRET-ACCESS: step-free",
    )
    journey = [
        (Status.RECEIVED, date(2026, 1, 8)),
        (Status.CONTACTING, date(2026, 1, 12)),
        (Status.ASSESSED, date(2026, 2, 2)),
        (Status.ENROLLED, date(2026, 3, 1)),
        (Status.STARTED, date(2026, 3, 12)),
        (Status.COMPLETED, date(2026, 5, 20)),
    ]
    referral = _referral(
        her,
        practice,
        journey,
        ("SECRET-TRANSITION: Philippa completed", "SECRET-STEP-NOTE"),
        reason="SECRET-REASON: Philippa Quennell-Whitcombe is lonely since moving to LS6 2QT",
        interests=["singing", "music"],
        risk_flag=True,
        risk_note="SECRET-RISK: lives alone, phone 01632 960123",
        new_episode_reason="SECRET-EPISODE",
    )
    _referral(
        her,
        practice,
        [(Status.RECEIVED, date(2025, 2, 3)), (Status.DECLINED, date(2025, 2, 20))],
        reason="SECRET-REASON (earlier)",
    )
    db.session.add_all(
        [
            ContactAttempt(
                referral=referral,
                method=ContactMethod.PHONE,
                outcome=ContactOutcome.SPOKE,
                note="SECRET-CONTACT: called Philippa on 01632 960123",
            ),
            Conversation(
                referral=referral,
                held_on=date(2026, 2, 2),
                what_matters="SECRET-MATTERS: singing with others again",
                agreed_next_steps="SECRET-NEXT",
                preferred_art_forms=["singing"],
            ),
        ]
    )
    enrolment = _attend(
        course_x,
        referral,
        "AAAAAA",
        note="SECRET-REGISTER: Philippa brought her carer",
        status=EnrolmentStatus.COMPLETED,
    )
    _attend(
        course_y,
        referral,
        "AN",
        status=EnrolmentStatus.WITHDRAWN,
        withdrawn_reason="SECRET-WITHDRAWN: clashes with Philippa's hospital appointments",
    )
    for timepoint, raw, on in ((Timepoint.BASELINE, 14, 3), (Timepoint.END, 24, 5)):
        db.session.add(
            WellbeingAssessment(
                enrolment=enrolment,
                instrument=Instrument.SWEMWBS,
                timepoint=timepoint,
                items=[],
                raw_score=raw,
                metric_score=SWEMWBS_METRIC[raw],
                recorded_on=date(2026, on, 14),
            )
        )

    other = _person(
        practice,
        nhs_number="9990000018",
        given_name="Bartholomew",
        family_name="Ossington",
        date_of_birth=date(1990, 8, 1),
        sex=Sex.MALE,
        postcode="GL4 6PE",
    )
    other_referral = _referral(
        other,
        practice,
        [(Status.RECEIVED, date(2026, 2, 1)), (Status.STARTED, date(2026, 3, 12))],
        reason="SECRET-OTHER",
    )
    _attend(course_x, other_referral, "AANAAA", status=EnrolmentStatus.ENROLLED)

    # Messages: one names her, one only points at her referral, one is about someone else.
    db.session.add_all(
        [
            Notification(
                organisation_id=practice.id,
                text="Philippa Quennell-Whitcombe (943 476 5919) asked to change group",
                link=f"/referrals/{referral.id}",
            ),
            Notification(
                organisation_id=practice.id,
                text=f"Referral R{referral.id} completed their arts course.",
                link=f"/referrals/{referral.id}",
            ),
            Notification(
                organisation_id=practice.id,
                text=f"Referral R{other_referral.id} accepted support.",
                link=f"/referrals/{other_referral.id}",
            ),
        ]
    )
    # The API's stored first answer, which shows her record.
    from referrals.api.referrals import Referral
    from referrals.openapi import dump

    db.session.flush()
    db.session.add(
        IdempotentRequest(
            user_id=admin.id,
            key="retry-key-1",
            endpoint="api.create_referral_view",
            request_hash="0" * 64,
            status_code=201,
            body=json.loads(json.dumps(dump(Referral, referral))),
        )
    )
    db.session.commit()
    return Scheme(admin, practice, contracts[0], contracts[1], her, referral, other)


# Helpers -----------------------------------------------------------------------------------


def every_value() -> list[tuple[str, str]]:
    """(table.column, text) for every non-null value of every column of every table."""
    found = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            for column, value in row.items():
                if value is None:
                    continue
                if isinstance(value, dict | list):
                    value = json.dumps(value, default=str, ensure_ascii=False)
                found.append((f"{table.name}.{column}", str(value)))
    return found


def places_holding(needles: list[str]) -> list[tuple[str, str]]:
    values = every_value()
    return [
        (place, needle)
        for needle in needles
        for place, value in values
        if needle.lower() in value.lower()
    ]


def figures(scope: Scope, period: Period) -> list[tuple[Any, ...]]:
    return [
        (f.code, f.breakdown, f.value, f.people, f.numerator, f.denominator)
        for f in compute(scope, period).figures
    ]


def every_figure(scheme: Scheme) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    scopes = [Scope(None), Scope(scheme.contract_x.id), Scope(scheme.contract_y.id)]
    return {(s.key, p.key): figures(s, p) for s in scopes for p in PERIODS}


def stored_returns() -> list[dict[str, Any]]:
    return [
        {c.key: getattr(r, c.key) for c in KpiReturn.__table__.columns}
        for r in db.session.scalars(select(KpiReturn).order_by(KpiReturn.id))
    ]


def counted_columns() -> list[tuple[Any, ...]]:
    """The non-text facts the figures are made of, for the person's records and everyone's."""
    rows: list[tuple[Any, ...]] = []
    for model, columns in (
        (Referral, ("id", "status", "received_on", "closed_on", "pathway", "referrer_type")),
        (ReferralTransition, ("id", "to_status", "effective_on")),
        (Enrolment, ("id", "status", "course_id", "referral_id")),
        (Attendance, ("id", "status", "mood_before", "mood_after", "session_id")),
        (WellbeingAssessment, ("id", "raw_score", "metric_score", "timepoint")),
        (Patient, ("id", "sex", "ethnicity", "gp_practice_id")),
    ):
        for item in db.session.scalars(select(model).order_by(model.id)):
            rows.append((model.__name__, *(getattr(item, c) for c in columns)))
    return rows


def make_returns(scheme: Scheme) -> None:
    for contract_id in (scheme.contract_x.id, scheme.contract_y.id, None):
        for period in (Period(2026, 4), Period(2026, 5)):
            make_return(contract_id, period, today=TODAY, job="test")


# Anonymising and erasing -------------------------------------------------------------------


SECTION_D = ("D1", "D2", "D3")


def without_equality_breakdowns(
    every: dict[tuple[str, str], list[tuple[Any, ...]]],
) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """Every figure but section D's cells, which count a coarsened person as not stated."""
    return {key: [f for f in found if f[0] not in SECTION_D] for key, found in every.items()}


def d_totals(every: dict[tuple[str, str], list[tuple[Any, ...]]]) -> dict[Any, int]:
    """Each section D breakdown's total, per scope, period and code."""
    totals: dict[Any, int] = {}
    for key, found in every.items():
        for code, _breakdown, value, *_ in found:
            if code in SECTION_D:
                totals[(key, code)] = totals.get((key, code), 0) + int(value or 0)
    return totals


@pytest.mark.parametrize("min_group", [1, 5])
def test_pseudonymising_removes_every_identifier_and_keeps_the_figures(
    app: Any, min_group: int
) -> None:
    """With nobody coarsened (1) every figure is unchanged, section D too; by default (5) she is
    the only pseudonymised person at her practice, so her sex, ethnic group and age go."""
    app.config["PSEUDONYMISED_MIN_GROUP"] = min_group
    scheme = build_scheme()
    make_returns(scheme)
    before_figures = every_figure(scheme)
    before_returns = stored_returns()
    before_facts = counted_columns()
    # The scheme is worth testing: her identifiers and notes are spread across the tables.
    held = {needle for _, needle in places_holding(IDENTIFIERS + FREE_TEXT)}
    assert held == set(IDENTIFIERS + FREE_TEXT)
    places = {place for place, _ in places_holding(["9434765919"])}
    assert {"patient.nhs_number", "idempotent_request.body"} <= places
    # Her age band changes between April and May, so D1 needs her date of birth.
    may = dict(((f[0], f[1]), f[2]) for f in figures(Scope(scheme.contract_x.id), Period(2026, 5)))
    assert may[("D1", "age_band=65-74")] == 1

    pseudonymise_patient(
        scheme.admin, scheme.her, "Request SAR-2291 from Philippa Quennell-Whitcombe"
    )
    db.session.commit()
    db.session.expire_all()

    assert places_holding(IDENTIFIERS + ALSO_TYPED + FREE_TEXT) == []
    assert stored_returns() == before_returns
    after_figures = every_figure(scheme)
    assert without_equality_breakdowns(after_figures) == without_equality_breakdowns(before_figures)
    assert d_totals(after_figures) == d_totals(before_figures)
    her = db.session.get(Patient, scheme.her.id)
    assert her is not None and her.anonymised_at is not None
    if min_group == 1:
        assert after_figures == before_figures
        assert counted_columns() == before_facts
        assert her.date_of_birth is not None and her.date_of_birth != BORN
        assert (her.sex, her.ethnicity) == (Sex.FEMALE, Ethnicity.WHITE)
    else:
        assert (her.date_of_birth, her.sex, her.ethnicity) == (
            None,
            Sex.NOT_STATED,
            Ethnicity.NOT_STATED,
        )
        may = figures(Scope(scheme.contract_x.id), Period(2026, 5))
        assert ("D1", "age_band=unknown", 1) in [f[:3] for f in may]
    assert (her.nhs_number, her.phone, her.email, her.postcode) == (None, None, None, None)
    referral = db.session.get(Referral, scheme.her_referral.id)
    assert referral is not None
    assert referral.reason == REMOVED and referral.risk_flag is True
    assert referral.interests == ["singing", "music"]
    # Messages that named her are kept, without her details; the stored API answer is gone.
    texts = db.session.scalars(select(Notification.text).order_by(Notification.id)).all()
    assert len(texts) == 3 and REMOVED in texts[0]
    assert db.session.scalar(select(IdempotentRequest.id)) is None

    # Someone else's record is untouched.
    assert {needle for _, needle in places_holding(OTHER_PERSON)} == set(OTHER_PERSON)

    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.pseudonymised")
    ).all()
    assert len(events) == 1
    event = events[0]
    assert event.actor_id == scheme.admin.id and event.object_type == "patient"
    assert event.object_id == str(scheme.her.id)
    assert event.detail["trigger"] == "request"
    assert event.detail["reason"] == f"Request SAR-2291 from {REMOVED}"
    assert sorted(event.detail["referral_ids"]) == sorted(r.id for r in her.referrals)


def test_erasing_also_removes_what_no_figure_needs(app: Any) -> None:
    scheme = build_scheme()
    make_returns(scheme)
    before_figures = every_figure(scheme)
    before_returns = stored_returns()

    erase_patient(scheme.admin, scheme.her, "Erasure request ER-17")
    db.session.commit()
    db.session.expire_all()

    assert places_holding(IDENTIFIERS + ALSO_TYPED + FREE_TEXT) == []
    after_figures = every_figure(scheme)
    assert without_equality_breakdowns(after_figures) == without_equality_breakdowns(before_figures)
    assert d_totals(after_figures) == d_totals(before_figures)
    assert stored_returns() == before_returns
    her = db.session.get(Patient, scheme.her.id)
    assert her is not None and her.postcode is None and her.anonymised_at is not None
    assert all(r.interests == [] for r in her.referrals)
    assert db.session.scalars(select(Conversation.preferred_art_forms)).all() == [[]]
    # Both messages about her referral are gone; the one about someone else stays.
    links = db.session.scalars(select(Notification.link)).all()
    assert links == [f"/referrals/{scheme.other.referrals[0].id}"]
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.erased"))
    assert event is not None and event.detail["messages_removed"] == 2
    assert event.detail["stored_answers_removed"] == 1


def test_a_reason_is_required(app: Any) -> None:
    scheme = build_scheme()
    with pytest.raises(ReasonRequired):
        pseudonymise_patient(scheme.admin, scheme.her, "   ")
    db.session.rollback()
    assert db.session.get(Patient, scheme.her.id).nhs_number == "9434765919"  # type: ignore[union-attr]


def test_pseudonymising_twice_changes_nothing_more(app: Any) -> None:
    scheme = build_scheme()
    pseudonymise_patient(None, scheme.her, "first")
    db.session.commit()
    first = (scheme.her.date_of_birth, scheme.her.postcode, scheme.her.anonymised_at)
    texts = db.session.scalars(select(Notification.text).order_by(Notification.id)).all()
    pseudonymise_patient(None, scheme.her, "again")
    db.session.commit()
    assert (scheme.her.date_of_birth, scheme.her.postcode, scheme.her.anonymised_at) == first
    assert db.session.scalars(select(Notification.text).order_by(Notification.id)).all() == texts


@settings(max_examples=300, deadline=None)
@given(
    born=st.dates(date(1900, 1, 1), date(2015, 12, 31)),
    offsets=st.lists(st.integers(0, 110 * 366), min_size=1, max_size=8),
)
def test_the_stand_in_birth_date_keeps_every_age_band(born: date, offsets: list[int]) -> None:
    days = [born + timedelta(days=n) for n in offsets]
    stand_in = band_preserving_birth_date(born, days)
    assert stand_in is not None
    for day in days:
        assert _age_band(age_on(stand_in, day)) == _age_band(age_on(born, day))


def test_the_stand_in_birth_date_depends_only_on_the_bands() -> None:
    days = [date(2026, 4, 16), date(2026, 5, 14)]
    # Two people in the same bands on those dates get the same stand-in.
    assert band_preserving_birth_date(date(1961, 4, 23), days) == band_preserving_birth_date(
        date(1961, 5, 2), days
    )
    assert band_preserving_birth_date(None, days) is None
    assert band_preserving_birth_date(date(1961, 4, 23), []) is None


# The retention rule ------------------------------------------------------------------------


def _closed_person(practice: Organisation, closed_on: date, *, still_open: bool = False) -> Patient:
    person = _person(
        practice, given_name="Closed", family_name="Person", date_of_birth=date(1970, 1, 1)
    )
    received = closed_on - timedelta(days=60)
    _referral(person, practice, [(Status.RECEIVED, received), (Status.DECLINED, closed_on)])
    if still_open:
        _referral(person, practice, [(Status.RECEIVED, TODAY - timedelta(days=3))])
    return person


def test_the_retention_job_anonymises_exactly_the_people_past_the_period(app: Any) -> None:
    assert app.config["RETENTION_YEARS"] == 8
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    eight_years_ago = TODAY - relativedelta(years=8)
    not_yet = _closed_person(practice, TODAY - relativedelta(years=7, months=11))
    exactly = _closed_person(practice, eight_years_ago)
    expired = _closed_person(practice, eight_years_ago - timedelta(days=1))
    one_open = _closed_person(practice, TODAY - relativedelta(years=9), still_open=True)
    done = _closed_person(practice, TODAY - relativedelta(years=10))
    done.anonymised_at = datetime(2020, 1, 1, tzinfo=UTC)
    user = factories.make_user(Role.ADMIN)
    now = datetime.now(UTC)
    for key, age in (("old", timedelta(hours=25)), ("fresh", timedelta(hours=1))):
        db.session.add(
            IdempotentRequest(
                user_id=user.id,
                key=key,
                endpoint="x",
                request_hash="0" * 64,
                status_code=201,
                body={},
                created_at=now - age,
            )
        )
    db.session.commit()

    due = db.session.scalars(expired_patients(TODAY, 8)).all()
    assert [p.id for p in due] == [expired.id]
    db.session.commit()  # end this test's transaction, which holds SQLite's write lock

    run = execute(app, RETENTION, today=TODAY)
    assert run.outcome == "succeeded"
    assert run.detail == (
        "1 person pseudonymised, 1 stored API answer removed, 0 old messages removed"
    )
    db.session.expire_all()
    pseudonymised = db.session.scalars(
        select(Patient.id).where(Patient.anonymised_at.is_not(None)).order_by(Patient.id)
    ).all()
    assert pseudonymised == [expired.id, done.id]
    for person in (not_yet, exactly, one_open):
        assert person.given_name == "Closed"
    assert db.session.scalars(select(IdempotentRequest.key)).all() == ["fresh"]
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.pseudonymised")
    ).all()
    assert [(e.object_id, e.actor_id, e.detail["trigger"]) for e in events] == [
        (str(expired.id), None, "retention")
    ]

    # The day's run is done once: running again the same day skips it.
    db.session.commit()
    again = execute(app, RETENTION, today=TODAY)
    assert (again.outcome, again.detail) == ("skipped", "already done")
    assert db.session.query(JobRun).count() == 2


def test_the_retention_job_deletes_messages_finished_with_longer_ago_than_configured(
    app: Any,
) -> None:
    assert app.config["OUTBOUND_KEEP_DAYS"] == 90
    user = factories.make_user(Role.ADMIN)
    run_on = datetime(2026, 7, 1, 2, 15, tzinfo=UTC)

    def message(key: str, status: MessageStatus, last_try: datetime | None) -> None:
        db.session.add(
            OutboundMessage(
                kind="job_failed",
                channel=Channel.EMAIL,
                recipient=user.email,
                dedupe_key=key,
                body="x",
                user_id=user.id,
                status=status,
                created_at=run_on - timedelta(days=200),
                claimed_at=last_try,
                sent_at=last_try if status is MessageStatus.SENT else None,
            )
        )

    ninety_days = timedelta(days=90)
    message("sent-old", MessageStatus.SENT, run_on - ninety_days - timedelta(minutes=1))
    message("failed-old", MessageStatus.FAILED, run_on - ninety_days - timedelta(minutes=1))
    message("cancelled-old", MessageStatus.CANCELLED, None)
    message("sent-recent", MessageStatus.SENT, run_on - ninety_days + timedelta(minutes=1))
    message("failed-recent", MessageStatus.FAILED, run_on - timedelta(days=3))
    # Still to send, however old: never deleted.
    message("queued-old", MessageStatus.QUEUED, None)
    message("sending-old", MessageStatus.SENDING, run_on - timedelta(days=100))
    db.session.commit()

    with time_machine.travel(run_on, tick=False):
        run = execute(app, RETENTION, today=run_on.date())
    assert run.outcome == "succeeded"
    assert run.detail.endswith(", 3 old messages removed")
    db.session.expire_all()
    kept = db.session.scalars(select(OutboundMessage.dedupe_key).order_by(OutboundMessage.id))
    assert kept.all() == ["sent-recent", "failed-recent", "queued-old", "sending-old"]

    # Configurable: a shorter period deletes the recent ones too.
    app.config["OUTBOUND_KEEP_DAYS"] = 2
    with time_machine.travel(run_on, tick=False):
        assert purge_outbound_messages() == 2
    db.session.commit()
    kept = db.session.scalars(select(OutboundMessage.dedupe_key).order_by(OutboundMessage.id))
    assert kept.all() == ["queued-old", "sending-old"]


def test_the_job_is_scheduled_daily_at_a_quarter_past_three() -> None:
    from referrals.scheduler.jobs import JOBS_BY_ID

    assert JOBS_BY_ID[RETENTION].cron == {"hour": 3, "minute": 15}


# The admin page ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.REFERRER, Role.LINK_WORKER, Role.ARTIST, Role.COMMISSIONER])
def test_only_admins_may_erase(login_as: Any, app: Any, role: Role) -> None:
    scheme = build_scheme()
    client = login_as(role)
    url = f"/admin/people/{scheme.her.id}/erase"
    assert client.get(url).status_code == 403
    token = csrf_token(client, "/account/password")
    response = client.post(url, data={"csrf_token": token, "mode": "erase", "reason": "x"})
    assert response.status_code == 403
    db.session.expire_all()
    assert db.session.get(Patient, scheme.her.id).anonymised_at is None  # type: ignore[union-attr]


def test_the_admin_page_needs_a_choice_and_a_reason(login_as: Any, app: Any) -> None:
    scheme = build_scheme()
    client = login_as(scheme.admin)
    url = f"/admin/people/{scheme.her.id}/erase"
    page = client.get(url)
    assert page.status_code == 200
    assert "Philippa Quennell-Whitcombe" in page.get_data(as_text=True)
    token = csrf_token(client, url)

    for data, message in (
        ({"mode": "pseudonymise", "reason": "  "}, "Give a reason"),
        ({"reason": "SAR-1"}, "Choose whether to pseudonymise or erase"),
    ):
        response = client.post(url, data={"csrf_token": token, **data})
        assert response.status_code == 200
        assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Patient, scheme.her.id).anonymised_at is None  # type: ignore[union-attr]

    response = client.post(url, data={"csrf_token": token, "mode": "erase", "reason": "ER-9"})
    assert response.status_code == 302
    db.session.expire_all()
    her = db.session.get(Patient, scheme.her.id)
    assert her is not None and her.anonymised_at is not None and her.postcode is None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "patient.erased"))
    assert event is not None and event.actor_id == scheme.admin.id
    assert event.detail["reason"] == "ER-9"
    assert client.get("/admin/people/999999/erase").status_code == 404


def test_the_referral_page_links_admins_to_the_erase_page(login_as: Any, app: Any) -> None:
    scheme = build_scheme()
    link = f"/admin/people/{scheme.her.id}/erase"
    url = f"/referrals/{scheme.her_referral.id}"
    admin_page = login_as(scheme.admin).get(url).get_data(as_text=True)
    assert link in admin_page
    referrer = factories.make_user(Role.REFERRER, organisation=scheme.practice)
    referrer_page = login_as(referrer).get(url)
    assert referrer_page.status_code == 200 and link not in referrer_page.get_data(as_text=True)


@pytest.mark.parametrize("min_group", [1, 5])
def test_a_pseudonymised_referral_page_still_shows(
    login_as: Any, api_client: Any, app: Any, min_group: int
) -> None:
    """The stand-in date of birth (kept when nobody is coarsened) is never shown as real."""
    app.config["PSEUDONYMISED_MIN_GROUP"] = min_group
    scheme = build_scheme()
    pseudonymise_patient(None, scheme.her, "retention test")
    db.session.commit()
    assert (scheme.her.date_of_birth is not None) is (min_group == 1)
    page = login_as(scheme.admin).get(f"/referrals/{scheme.her_referral.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Pseudonymised person" in text and "Philippa" not in text
    assert "Removed: the record is pseudonymised" in text and "(age " not in text
    client, headers = api_client(scheme.admin)
    api = client.get(f"/api/v1/referrals/{scheme.her_referral.id}", headers=headers)
    assert api.status_code == 200 and api.get_json()["patient"]["date_of_birth"] is None


def test_retention_commands(runner: Any, app: Any) -> None:
    scheme = build_scheme()
    person = ["retention", "person", str(scheme.her.id), "--reason", "SAR-3"]
    assert runner.invoke(args=person).exit_code == 2  # someone answerable must be named
    result = runner.invoke(args=[*person, "--by", scheme.admin.email])
    assert result.exit_code == 0, result.output
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "patient.pseudonymised")
    )
    assert event is not None and event.actor_id == scheme.admin.id
    assert event.detail["os_user"] == getpass.getuser()
    assert f"P{scheme.her.id} pseudonymised" in result.output
    db.session.expire_all()
    assert db.session.get(Patient, scheme.her.id).nhs_number is None  # type: ignore[union-attr]
    result = runner.invoke(args=["retention", "due"])
    assert result.exit_code == 0 and "0 people" in result.output
