"""The demo scheme: commissioners, practices, a link worker service, providers, accounts, and
thirteen months of referrals, course runs, registers and wellbeing questionnaires.

Run by `make run` on an empty database (`flask seed demo --if-empty`).
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import or_, select

from referrals import clock
from referrals.auth.models import Organisation, OrganisationKind, Role
from referrals.auth.services import OrganisationFields, UserFields, create_organisation, create_user
from referrals.courses.models import CourseSession, Enrolment, EnrolmentStatus, SessionStatus
from referrals.extensions import db
from referrals.intake.models import Patient, Referral
from referrals.seeding.demo_courses import seed_demo_scheme
from referrals.vocab import ContactMethod

# Documented in the README. Demo data only: never use it on a real deployment.
DEMO_PASSWORD = "choir-painting-dance"  # noqa: S105

COMMISSIONERS = [
    ("NHS Severnvale Integrated Care Board", None),
    ("Severnshire County Council Public Health", None),
]
GP_PRACTICES = [
    ("Abbey Road Surgery", "L84001"),
    ("Brookside Medical Centre", "L84002"),
    ("Castle Street Health Centre", "L84003"),
    ("Dean Valley Practice", "L84004"),
    ("Eastgate Family Doctors", "L84005"),
    ("Forest Green Surgery", "L84006"),
]
LINK_WORKER_SERVICES = [("Severnvale Social Prescribing Service", None)]
PROVIDERS = [
    ("Cathedral Voices CIC", None),
    ("Riverside Arts", None),
    ("Moving Minds Dance", None),
    ("Severnvale Museum", None),
]

DEMO_USERS = [
    ("admin@demo.test", "Alex Morgan", Role.ADMIN, "Severnvale Social Prescribing Service"),
    ("gp@demo.test", "Dr Priya Shah", Role.REFERRER, "Abbey Road Surgery"),
    ("gp2@demo.test", "Dr Tom Hughes", Role.REFERRER, "Brookside Medical Centre"),
    (
        "linkworker@demo.test",
        "Sam Okafor",
        Role.LINK_WORKER,
        "Severnvale Social Prescribing Service",
    ),
    (
        "linkworker2@demo.test",
        "Jo Bennett",
        Role.LINK_WORKER,
        "Severnvale Social Prescribing Service",
    ),
    ("artist@demo.test", "Maria Lopez", Role.ARTIST, "Cathedral Voices CIC"),
    ("artist2@demo.test", "Dev Patel", Role.ARTIST, "Riverside Arts"),
    ("artist3@demo.test", "Nia Roberts", Role.ARTIST, "Moving Minds Dance"),
    ("artist4@demo.test", "Ruth Ellison", Role.ARTIST, "Severnvale Museum"),
    (
        "commissioner@demo.test",
        "Helen Price",
        Role.COMMISSIONER,
        "NHS Severnvale Integrated Care Board",
    ),
    (
        "publichealth@demo.test",
        "Ian Ward",
        Role.COMMISSIONER,
        "Severnshire County Council Public Health",
    ),
]


def seed_demo(today: date | None = None) -> dict[str, Organisation]:
    """Create the demo organisations, accounts, contracts, courses and referrals up to `today`
    (default: today in London); the caller commits."""
    organisations: dict[str, Organisation] = {}
    for kind, rows in (
        (OrganisationKind.COMMISSIONER, COMMISSIONERS),
        (OrganisationKind.GP_PRACTICE, GP_PRACTICES),
        (OrganisationKind.LINK_WORKER_SERVICE, LINK_WORKER_SERVICES),
        (OrganisationKind.PROVIDER, PROVIDERS),
    ):
        for name, ods_code in rows:
            # Practices' shared mailboxes are reserved example addresses: messages back go there.
            mailbox = (
                f"{ods_code.lower()}.shared@practices.example.org"
                if kind is OrganisationKind.GP_PRACTICE and ods_code
                else None
            )
            organisations[name] = create_organisation(
                None,
                OrganisationFields(name=name, kind=kind, ods_code=ods_code, shared_mailbox=mailbox),
            )
    for email, name, role, organisation_name in DEMO_USERS:
        create_user(
            None, UserFields(email, name, role, organisations[organisation_name]), DEMO_PASSWORD
        )
    today = today or clock.today()
    seed_demo_scheme(organisations, today=today)
    _messages_due_from_today(today)
    return organisations


def _messages_due_from_today(today: date) -> None:
    """Everyone on a course that meets tomorrow, and everyone offered a place or waiting on a
    course with a place on offer, chose email (at a reserved example address) and consented,
    so that with email set up, the demo's reminders and its place on offer reach people on
    the day it is loaded, and the offer passes to the next person by email too."""
    meeting_tomorrow = select(CourseSession.course_id).where(
        CourseSession.date == today + timedelta(days=1),
        CourseSession.status == SessionStatus.PLANNED,
    )
    with_an_offer = select(Enrolment.course_id).where(Enrolment.status == EnrolmentStatus.OFFERED)
    patients = db.session.scalars(
        select(Patient)
        .join(Referral, Referral.patient_id == Patient.id)
        .join(Enrolment, Enrolment.referral_id == Referral.id)
        .where(
            or_(
                (Enrolment.status == EnrolmentStatus.ENROLLED)
                & Enrolment.course_id.in_(meeting_tomorrow),
                Enrolment.status.in_((EnrolmentStatus.OFFERED, EnrolmentStatus.WAITLISTED))
                & Enrolment.course_id.in_(with_an_offer),
            ),
            Referral.consent.is_(True),
        )
        .order_by(Patient.id)
    ).all()
    for patient in patients:
        patient.preferred_contact = ContactMethod.EMAIL
        patient.email = patient.email or f"participant{patient.id}@example.org"
    db.session.flush()
