"""The demo scheme: commissioners, practices, a link worker service, providers, accounts, and
thirteen months of referrals, course runs, registers and wellbeing questionnaires.

Run by `make run` on an empty database (`flask seed demo --if-empty`).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from referrals.auth.models import Organisation, OrganisationKind, Role
from referrals.auth.services import OrganisationFields, UserFields, create_organisation, create_user
from referrals.courses.demo import seed_demo_scheme

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
            organisations[name] = create_organisation(
                None, OrganisationFields(name=name, kind=kind, ods_code=ods_code)
            )
    for email, name, role, organisation_name in DEMO_USERS:
        create_user(
            None, UserFields(email, name, role, organisations[organisation_name]), DEMO_PASSWORD
        )
    seed_demo_scheme(organisations, today=today or datetime.now(ZoneInfo("Europe/London")).date())
    return organisations
