"""Names left behind: pseudonymising or erasing a person removes their name and NHS number from
other people's notes, regeneration reasons and messages; reasons that commissioners read are
screened for names and NHS numbers before they are stored."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role
from referrals.courses.models import Attendance, Contract, EnrolmentStatus, Venue
from referrals.extensions import db
from referrals.free_text import IDENTIFIERS_IN_REASON, TERMS_PER_QUERY
from referrals.intake.lifecycle import Status
from referrals.intake.models import ContactAttempt, Referral
from referrals.notifications.models import Channel, Notification, OutboundMessage
from referrals.reports.models import KpiReturn
from referrals.reports.periods import Period
from referrals.reports.services import ReturnRefused, make_return, regenerate_return
from referrals.retention import erase_patient, pseudonymise_expired, pseudonymise_patient
from referrals.vocab import ContactMethod, ContactOutcome
from tests import factories
from tests.conftest import csrf_token
from tests.query_counts import counting_queries
from tests.test_retention import _attend, _course, _person, _referral

MAY = Period(2026, 5)
TODAY = date(2026, 7, 1)
LATE_REGISTER = "Late register: Ellie White (R346) attended 13 Aug"
CLOSED = [(Status.RECEIVED, date(2026, 1, 5)), (Status.COMPLETED, date(2026, 6, 1))]


def _scheme() -> dict[str, Any]:
    """Ellie and Sheila on a May course; Margaret's notes name them both."""
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    commissioner = factories.make_organisation(OrganisationKind.COMMISSIONER)
    venue = Venue(name="Hall", address="1 Lane", postcode="GL1 2AB")
    contract = Contract(
        name="Contract",
        commissioner=commissioner,
        start_date=date(2025, 4, 1),
        end_date=date(2027, 3, 31),
        targets={},
    )
    db.session.add_all([venue, contract])
    db.session.flush()
    course = _course(provider, venue, contract, [date(2026, 5, 7), date(2026, 5, 14)])
    people = {
        key: _person(
            practice, given_name=given, family_name=family, nhs_number=nhs, date_of_birth=born
        )
        for key, given, family, nhs, born in (
            ("ellie", "Ellie", "White", "9876543210", date(1950, 3, 3)),
            ("sheila", "Sheila", "Payne", "4010232137", date(1948, 6, 9)),
            ("margaret", "Margaret", "Oduya", None, date(1952, 1, 2)),
        )
    }
    referrals = {name: _referral(person, practice, CLOSED) for name, person in people.items()}
    done = {"status": EnrolmentStatus.COMPLETED}
    _attend(course, referrals["ellie"], "AA", **done)
    _attend(course, referrals["sheila"], "AA", **done)
    _attend(course, referrals["margaret"], "AA", note="Sat with Sheila Payne", **done)
    db.session.add_all(
        [
            ContactAttempt(
                referral=referrals["margaret"],
                method=ContactMethod.PHONE,
                outcome=ContactOutcome.SPOKE,
                note="Her neighbour Ellie Whitfield drives her. Letter sent to 987 654 3210 by "
                "mistake, the number is White, Ellie's",
            ),
            Notification(organisation_id=practice.id, text="Ellie White asked to change group"),
            OutboundMessage(
                kind="general",
                channel=Channel.EMAIL,
                recipient="linkworker@example.org",
                dedupe_key="about-ellie",
                body="ELLIE WHITE (NHS 987-654-3210) asked to change group",
            ),
            OutboundMessage(
                kind="session_reminder",
                channel=Channel.SMS,
                recipient="07700900123",
                dedupe_key="to-ellie",
                body="Your singing group meets tomorrow at 10:00",
                patient_id=people["ellie"].id,
            ),
        ]
    )
    db.session.commit()
    made = make_return(contract.id, MAY, today=TODAY).kpi_return
    # A reason stored before reasons were screened.
    made.reason = LATE_REGISTER
    db.session.commit()
    return {"contract": contract, "practice": practice, "return": made, **people}


def _texts() -> dict[str, Any]:
    return {
        "reason": db.session.scalar(select(KpiReturn.reason)),
        "note": db.session.scalars(select(Attendance.note).where(Attendance.note != "")).all(),
        "contact": db.session.scalar(select(ContactAttempt.note)),
        "message": db.session.scalar(select(Notification.text)),
        "outbound": db.session.scalars(select(OutboundMessage.body)).all(),
    }


def test_pseudonymising_removes_their_name_and_nhs_number_from_everyone_s_free_text(
    app: Any,
) -> None:
    scheme = _scheme()
    pseudonymise_patient(None, scheme["ellie"], "SAR-11")
    db.session.commit()
    db.session.expire_all()
    texts = _texts()
    assert texts["reason"] == "Late register: [removed] (R346) attended 13 Aug"
    assert texts["message"] == "[removed] asked to change group"
    assert texts["contact"] == (
        "Her neighbour Ellie Whitfield drives her. Letter sent to [removed] by "
        "mistake, the number is [removed]'s"
    )
    # The message queued for her is gone; the one about her to a link worker is kept, redacted.
    assert texts["outbound"] == ["[removed] (NHS [removed]) asked to change group"]
    # Someone else's note, naming someone else, is untouched.
    assert texts["note"] == ["Sat with Sheila Payne"]
    event_row = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "patient.pseudonymised")
    )
    assert event_row is not None
    assert event_row.detail["texts_naming_them"] == 4
    assert event_row.detail["outbound_messages_removed"] == 1


def test_erasing_removes_their_name_from_another_person_s_register_note(app: Any) -> None:
    scheme = _scheme()
    erase_patient(None, scheme["sheila"], "ER-4")
    db.session.commit()
    db.session.expire_all()
    texts = _texts()
    assert texts["note"] == ["Sat with [removed]"]
    assert texts["reason"] == LATE_REGISTER  # Ellie is still here


def _name(n: int) -> str:
    return f"Given{n:02d} Family{n:02d}"


def test_a_bulk_run_reads_each_table_once_for_a_whole_batch(app: Any) -> None:
    """Forty people past retention: each free-text column is searched once for all of them,
    not once per person."""
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    long_ago = [(Status.RECEIVED, date(2010, 1, 4)), (Status.DECLINED, date(2010, 2, 1))]
    people = []
    for n in range(40):
        person = _person(
            practice,
            given_name=_name(n).split()[0],
            family_name=_name(n).split()[1],
            nhs_number=f"{9000000000 + n}",
            date_of_birth=date(1950, 1, 1) + timedelta(days=n),
        )
        people.append(person)
        _referral(
            person,
            practice,
            long_ago,
            reason=f"Came with Given{(n + 1) % 40:02d} Family{(n + 1) % 40:02d}",
        )
    _referral(people[0], practice, long_ago, reason="Ran with Given07 Family07 and Given08 x")
    db.session.commit()
    with counting_queries() as statements:
        assert pseudonymise_expired(TODAY, limit=100) == 40
    searches = [s for s in statements if re.search(r"referral\.reason\)? I?LIKE", s)]
    db.session.commit()
    terms_per_person = 5  # "Given Family", "Family, Given", and the NHS number three ways
    assert len(searches) == -(-40 * terms_per_person // TERMS_PER_QUERY)
    reasons = db.session.scalars(select(Referral.reason)).all()
    assert set(reasons) == {"[removed]"}


# Reasons commissioners read -----------------------------------------------------------------


def test_a_regeneration_reason_that_names_someone_is_refused_at_the_field(
    app: Any, login_as: Any
) -> None:
    scheme = _scheme()
    admin = login_as(Role.ADMIN)
    url = f"/returns/{scheme['return'].id}/regenerate"
    token = csrf_token(admin, url)
    for reason in (
        LATE_REGISTER,
        "Register for ellie white entered late",
        "Late register for NHS 987 654 3210",
        "Late register for 401-023-2137",
        "Late register for 4010232137",
    ):
        response = admin.post(url, data={"csrf_token": token, "reason": reason})
        page = response.get_data(as_text=True)
        assert response.status_code == 200, reason
        assert IDENTIFIERS_IN_REASON in page, reason
        assert f">{reason}</textarea>" in page, reason  # what was typed is kept
    assert db.session.query(KpiReturn).count() == 1

    # A reason naming nobody in the return's scope, or a name only partly, is stored.
    for reason in ("Registers for two sessions were entered late", "Ellie Whitfield's group"):
        response = admin.post(url, data={"csrf_token": token, "reason": reason})
        assert response.status_code == 302, reason
        url = response.headers["Location"] + "/regenerate"
    assert db.session.query(KpiReturn).count() == 3


def test_the_screen_applies_to_the_command_line_and_to_the_return_s_scope(app: Any) -> None:
    scheme = _scheme()
    admin = factories.make_user(Role.ADMIN)
    outsider = _person(scheme["practice"], given_name="Tomasz", family_name="Quill")
    _referral(outsider, scheme["practice"], CLOSED)
    db.session.commit()
    with pytest.raises(ReturnRefused) as refused:
        regenerate_return(admin, scheme["contract"].id, MAY, "Sheila Payne's register", today=TODAY)
    assert (str(refused.value), refused.value.field) == (IDENTIFIERS_IN_REASON, "reason")
    db.session.rollback()
    # Tomasz is on none of the contract's courses, so the contract's return cannot count him;
    # the all-activity return can.
    regenerate_return(admin, scheme["contract"].id, MAY, "Tomasz Quill's register", today=TODAY)
    make_return(None, MAY, today=TODAY)
    with pytest.raises(ReturnRefused):
        regenerate_return(admin, None, MAY, "Tomasz Quill's register", today=TODAY)
