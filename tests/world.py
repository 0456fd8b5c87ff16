"""A "world" with two of everything, for tests that walk routes with someone else's objects.

`build_world()` makes two GP practices (each with a referrer and referrals), two providers (each
with an artist and a course with sessions, enrolments and a taken register), two commissioners
(each with a contract and a KPI return for a finished month), two link workers, two admins,
notifications for everyone, venues and a spare account to act on.

Every object has a label. `World.visible(role, kind)` is the scope rule written out by hand from
docs/access-control.md and /work/shared/security.md (never computed by the application's own
scope code), so a test that compares answers with it fails when a scope filter is removed.
The acting user of each role is the "a" one (`world.users[role]["a"]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from referrals import clock
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.auth.services import api_tokens_of, issue_api_token
from referrals.courses.models import AttendanceStatus, CourseSession
from referrals.courses.services import RegisterEntry, enrol, save_register, withdraw
from referrals.extensions import db
from referrals.intake.services import record_conversation
from referrals.notifications.services import notify
from referrals.reports.periods import Period
from referrals.reports.services import make_return
from tests import factories
from tests.course_helpers import from_start
from tests.factories import make_contract, make_course, make_venue
from tests.intake_helpers import make_referral

ROLES = (Role.ADMIN, Role.REFERRER, Role.LINK_WORKER, Role.ARTIST, Role.COMMISSIONER)
MISSING_ID = 2_000_000_000  # a possible id that never exists: always a 404


def london_today() -> date:
    return clock.today()


@dataclass(frozen=True)
class Person:
    """A patient's identifiers, as typed in: what must never leak to the wrong people or logs."""

    label: str
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: date
    reason: str

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    def date_of_birth_formats(self) -> list[str]:
        d = self.date_of_birth
        return [
            d.isoformat(),
            f"{d:%d/%m/%Y}",
            f"{d.day}/{d.month}/{d.year}",
            f"{d:%d-%m-%Y}",
            f"{d.day} {d:%B %Y}",
            f"{d:%d %B %Y}",
            f"{d.day} {d:%b %Y}",
            f"{d:%d %b %Y}",
            f"{d:%Y%m%d}",
            f"{d.day} {d.month} {d.year}",
            f"date({d.year}, {d.month}, {d.day})",  # a date object's repr, as in log args
        ]

    def nhs_number_formats(self) -> list[str]:
        n = self.nhs_number
        return [n, f"{n[:3]} {n[3:6]} {n[6:]}", f"{n[:3]}-{n[3:6]}-{n[6:]}"]


# Distinctive, synthetic identifiers (999 range NHS numbers with valid check digits), so a
# search of any page, file or log for them cannot match by accident.
PEOPLE = {
    "ref_a": Person(
        "ref_a", "9990101019", "Aurelia", "Quenby", date(1951, 3, 17), "Zephyrine breathless"
    ),
    "ref_b": Person(
        "ref_b", "9990101027", "Bartholomew", "Yarrowby", date(1962, 11, 4), "Quillon lonely"
    ),
    "ref_x": Person(
        "ref_x", "9990101035", "Cressida", "Wollaston", date(1947, 7, 29), "Marrowfen grief"
    ),
    "ref_w": Person(
        "ref_w", "9990101043", "Desmond", "Vantongeren", date(1958, 1, 9), "Tiverlake anxiety"
    ),
}


@dataclass
class World:
    today: date
    period: Period
    organisations: dict[str, Organisation] = field(default_factory=dict)
    users: dict[Role, dict[str, User]] = field(default_factory=dict)
    objects: dict[str, dict[str, int]] = field(default_factory=dict)
    _visible: dict[tuple[Role, str], frozenset[str]] = field(default_factory=dict)

    def user(self, role: Role | str, which: str = "a") -> User:
        return self.users[Role(role)][which]

    def ids(self, kind: str) -> dict[str, int]:
        return self.objects[kind]

    def visible(self, role: Role, kind: str) -> frozenset[str]:
        """Labels of `kind` that the role's "a" user may see; every other label is a 404."""
        return self._visible.get((role, kind), frozenset())

    def people(self) -> list[Person]:
        return list(PEOPLE.values())

    def people_outside(self, role: Role) -> list[Person]:
        """Patients whose identifiers must never reach the role's "a" user at all."""
        seen = self.visible(role, "referral")
        if role == Role.ARTIST:
            on_register = {"ref_a", "ref_x"}  # enrolled on provider A's course
            return [p for p in PEOPLE.values() if p.label not in on_register]
        return [p for p in PEOPLE.values() if p.label not in seen]


def _past_session(course_id: int, today: date) -> CourseSession:
    sessions = db.session.scalars(
        db.select(CourseSession)
        .where(CourseSession.course_id == course_id, CourseSession.date < today)
        .order_by(CourseSession.date)
    ).all()
    assert sessions, "the course needs a session in the past"
    return sessions[-1]


def _referral(actor: User, practice: Organisation, person: Person, today: date) -> Any:
    referral = make_referral(
        actor,
        practice,
        nhs=person.nhs_number,
        today=today,
        given_name=person.given_name,
        family_name=person.family_name,
    )
    patient = referral.patient
    patient.date_of_birth = person.date_of_birth
    referral.reason = person.reason
    record_conversation(actor, referral, held_on=today, what_matters="Singing with others")
    return referral


def build_world() -> World:
    """Build and commit the world. Needs an app context."""
    today = london_today()
    world = World(today=today, period=Period.containing(today).previous())
    org = world.organisations
    kinds = {
        "gp": OrganisationKind.GP_PRACTICE,
        "prov": OrganisationKind.PROVIDER,
        "comm": OrganisationKind.COMMISSIONER,
        "lws": OrganisationKind.LINK_WORKER_SERVICE,
        "adm": OrganisationKind.LINK_WORKER_SERVICE,
    }
    for prefix, kind in kinds.items():
        for which in "ab":
            org[f"{prefix}_{which}"] = factories.make_organisation(kind)
    role_org = {
        Role.ADMIN: "adm",
        Role.REFERRER: "gp",
        Role.LINK_WORKER: "lws",
        Role.ARTIST: "prov",
        Role.COMMISSIONER: "comm",
    }
    for role in ROLES:
        world.users[role] = {
            which: factories.make_user(role, organisation=org[f"{role_org[role]}_{which}"])
            for which in "ab"
        }
    spare = factories.make_user(Role.REFERRER, organisation=org["gp_b"])
    link_worker = world.user(Role.LINK_WORKER)
    admin = world.user(Role.ADMIN)

    contract_a = make_contract(commissioner=org["comm_a"], name="Contract Alpha")
    contract_b = make_contract(commissioner=org["comm_b"], name="Contract Beta")
    venue_a = make_venue(name="Alpha Hall")
    venue_b = make_venue(name="Beta Hall")
    start = today - timedelta(days=14)
    course_a = make_course(
        org["prov_a"], contract=contract_a, venue=venue_a, start=start, title="Alpha Singing"
    )
    course_b = make_course(
        org["prov_b"], contract=contract_b, venue=venue_b, start=start, title="Beta Painting"
    )
    db.session.flush()

    referrals = {
        "ref_a": _referral(link_worker, org["gp_a"], PEOPLE["ref_a"], today),
        "ref_b": _referral(link_worker, org["gp_b"], PEOPLE["ref_b"], today),
        "ref_x": _referral(link_worker, org["gp_b"], PEOPLE["ref_x"], today),
        "ref_w": _referral(link_worker, org["gp_a"], PEOPLE["ref_w"], today),
    }
    joined = from_start(course_a)  # both courses start together: on all their registers
    enrolments = {
        "enr_a": enrol(link_worker, referrals["ref_a"], course_a, today=today, at=joined),
        "enr_b": enrol(link_worker, referrals["ref_b"], course_b, today=today, at=joined),
        "enr_x": enrol(link_worker, referrals["ref_x"], course_a, today=today, at=joined),
        "enr_w": enrol(link_worker, referrals["ref_w"], course_a, today=today, at=joined),
    }
    withdraw(link_worker, enrolments["enr_w"], "Moved away", today=today)
    db.session.flush()

    sessions = {
        "sess_a": _past_session(course_a.id, today),
        "sess_b": _past_session(course_b.id, today),
    }
    save_register(
        admin,
        sessions["sess_a"],
        [
            RegisterEntry(enrolments["enr_a"].id, AttendanceStatus.ATTENDED, 5, 7),
            RegisterEntry(enrolments["enr_x"].id, AttendanceStatus.APOLOGIES),
        ],
        today=today,
    )
    save_register(
        admin,
        sessions["sess_b"],
        [RegisterEntry(enrolments["enr_b"].id, AttendanceStatus.ATTENDED, 4, 6)],
        today=today,
    )

    notifications: dict[str, int] = {}
    for role in ROLES:
        for which in "ab":
            note = notify(user=world.user(role, which), text=f"For {role.value} {which}", link="/")
            db.session.flush()
            notifications[f"{role.value}_{which}"] = note.id
    for name in ("gp_a", "gp_b", "prov_a", "prov_b"):
        note = notify(organisation=org[name], text=f"For everyone at {name}", link="/")
        db.session.flush()
        notifications[f"org_{name}"] = note.id
    db.session.commit()

    # An API token for each role's "a" and "b" users: revoking one is a POST in the walk.
    tokens: dict[str, int] = {}
    for role in ROLES:
        for which in "ab":
            owner = world.user(role, which)
            issue_api_token(None, owner, "world")
            tokens[f"tok_{role.value}_{which}"] = api_tokens_of(owner)[0].id
    db.session.commit()

    returns = {
        "ret_a": make_return(contract_a.id, world.period, today=today).kpi_return.id,
        "ret_b": make_return(contract_b.id, world.period, today=today).kpi_return.id,
        "ret_all": make_return(None, world.period, today=today).kpi_return.id,
    }
    db.session.commit()

    world.objects = {
        "referral": {k: v.id for k, v in referrals.items()},
        "course": {"course_a": course_a.id, "course_b": course_b.id},
        "session": {k: v.id for k, v in sessions.items()},
        "enrolment": {k: v.id for k, v in enrolments.items()},
        "kpi_return": returns,
        "notification": notifications,
        "contract": {"contract_a": contract_a.id, "contract_b": contract_b.id},
        "venue": {"venue_a": venue_a.id, "venue_b": venue_b.id},
        "organisation": {"gp_a": org["gp_a"].id, "prov_b": org["prov_b"].id},
        "provider": {"prov_a": org["prov_a"].id, "prov_b": org["prov_b"].id},
        "user": {"spare": spare.id},
        "patient": {"pat_a": referrals["ref_a"].patient_id, "pat_b": referrals["ref_b"].patient_id},
        "api_token": tokens,
        "own_api_token": tokens,  # the same tokens, as their owners' account page sees them
    }
    _write_scopes(world)
    return world


def _write_scopes(world: World) -> None:
    """Who sees what, from the access-control table (not from the application's scope code)."""
    everything = {kind: frozenset(labels) for kind, labels in world.objects.items()}
    scopes: dict[Role, dict[str, frozenset[str]]] = {
        # Admins see everything (but only their own messages).
        Role.ADMIN: {**everything},
        # Link workers: the whole caseload, courses and enrolments.
        Role.LINK_WORKER: {
            "referral": everything["referral"],
            "course": everything["course"],
            "enrolment": everything["enrolment"],
        },
        # Referrers: their own practice's referrals, and those people's enrolments.
        Role.REFERRER: {
            "referral": frozenset({"ref_a", "ref_w"}),
            "course": everything["course"],
            "enrolment": frozenset({"enr_a", "enr_w"}),
        },
        # Artists: their own provider's courses and registers, and the people on them now
        # (not those withdrawn or waiting); never referrals.
        Role.ARTIST: {
            "course": frozenset({"course_a"}),
            "provider": frozenset({"prov_a"}),  # their own provider's public profile
            "session": frozenset({"sess_a"}),
            "enrolment": frozenset({"enr_a", "enr_x"}),
        },
        # Commissioners: the directory, their own contracts and their returns; no people.
        Role.COMMISSIONER: {
            "course": everything["course"],
            "contract": frozenset({"contract_a"}),
            "kpi_return": frozenset({"ret_a"}),
        },
    }
    own_org_messages = {Role.REFERRER: "org_gp_a", Role.ARTIST: "org_prov_a"}
    for role, kinds in scopes.items():
        kinds["own_api_token"] = frozenset({f"tok_{role.value}_a"})  # admins' included
        messages = {f"{role.value}_a"}
        if role in own_org_messages:
            messages.add(own_org_messages[role])
        kinds["notification"] = frozenset(messages)
        for kind, labels in kinds.items():
            world._visible[(role, kind)] = labels
