"""Every view of a person's data is audited, and the entry outlives the request's own work.

The walk derives which routes show person-level data instead of keeping a list: it asks every
GET route in the URL map (through the authorisation matrix's cases, as every role, with
objects in scope) and any answer that carries a world person's name or NHS number must have
written an audit entry by that user naming the object in the URL or a record of a person the
answer shows.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, current_app
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import Role
from referrals.courses.models import Enrolment
from referrals.extensions import db
from referrals.intake.models import Referral
from tests.conftest import csrf_token
from tests.test_authz_matrix import MATRIX, cases, response_text
from tests.world import World, build_world


def _people_records(world: World) -> dict[str, set[tuple[str, str]]]:
    """For each person's family name, the (object type, id) of every record of theirs."""
    records: dict[str, set[tuple[str, str]]] = {}
    for referral_id in world.ids("referral").values():
        referral = db.session.get(Referral, referral_id)
        assert referral is not None
        patient = referral.patient
        mine = records.setdefault(patient.family_name, set())
        mine.add(("patient", str(patient.id)))
        mine.add(("referral", str(referral.id)))
        for enrolment_id in db.session.scalars(
            select(Enrolment.id).where(Enrolment.referral_id == referral.id)
        ):
            mine.add(("enrolment", str(enrolment_id)))
    return records


def _shown(text: str, world: World) -> list[str]:
    return [p.family_name for p in world.people() if p.family_name in text or p.nhs_number in text]


TABLES = {"session": "course_session"}  # world kinds whose table is named otherwise


def _url_object(case: Any) -> tuple[str, str] | None:
    """The (table, id) of the object in a case's URL, if it takes one."""
    access = MATRIX[case.rule.endpoint]
    if access.obj is None:
        return None
    arg, kind = access.obj
    _endpoint, values = current_app.url_map.bind("localhost").match(case.path, method="GET")
    return TABLES.get(kind, kind), str(values[arg])


def _last_event_id() -> int:
    return int(db.session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0))) or 0)


def _walk(
    app: Flask, world: World, role: Role, client: Any, api: Any, headers: Any
) -> tuple[set[str], list[str]]:
    """(endpoints that showed people, failures)."""
    user = world.user(role)
    records = _people_records(world)
    showing: set[str] = set()
    failures: list[str] = []
    for case in cases(app, world, role):
        if case.method != "GET" or not case.inside:
            continue
        before = _last_event_id()
        response = api.get(case.path, headers=headers) if case.is_api else client.get(case.path)
        if response.status_code != 200:
            continue
        shown = _shown(response_text(response), world)
        if not shown:
            continue
        showing.add(case.rule.endpoint)
        db.session.rollback()
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.id > before, AuditEvent.actor_id == user.id)
        ).all()
        named = {(e.object_type, e.object_id) for e in events}
        wanted = set().union(*(records[name] for name in shown))
        url_object = _url_object(case)
        if url_object is not None:
            wanted.add(url_object)
        if not named & wanted:
            failures.append(
                f"{role.value}: GET {case.path} ({case.rule.endpoint}) shows {', '.join(shown)} "
                f"and wrote {sorted(e.action for e in events) or 'no audit entry'}"
            )
        # And the entry answers "who has seen this person?": it names the person themselves.
        people = {int(i) for name in shown for kind, i in records[name] if kind == "patient"}
        if named & wanted and not people & {e.subject_person_id for e in events}:
            failures.append(
                f"{role.value}: GET {case.path} ({case.rule.endpoint}) shows {', '.join(shown)} "
                "and its audit entries name none of them as the person seen"
            )
    return showing, failures


@pytest.mark.parametrize(
    "role", [Role.ADMIN, Role.LINK_WORKER, Role.REFERRER, Role.ARTIST], ids=lambda r: r.value
)
def test_every_page_that_shows_a_person_audits_the_view(
    app: Flask, login_as: Any, api_client: Any, role: Role
) -> None:
    world = build_world()
    client = login_as(world.user(role))
    api, headers = api_client(world.user(role))
    showing, failures = _walk(app, world, role, client, api, headers)
    # The walk found the pages it is about (so it cannot pass by finding nothing).
    expected = {
        Role.ADMIN: {"intake.referrals", "intake.contact", "courses.course", "courses.register"},
        Role.LINK_WORKER: {"intake.referral", "intake.assign_referral", "courses.wellbeing"},
        Role.REFERRER: {
            "intake.referrals",
            "intake.referral",
            "main.home",
            "intake.letter",
            "intake.letter_page",
        },
        Role.ARTIST: {
            "courses.register",
            "courses.offline_registers",
            "courses.register_pdf",
            "courses.register_printable",
        },
    }[role]
    assert expected <= showing, expected - showing
    assert not failures, f"{len(failures)} unaudited:\n" + "\n".join(failures)


def _events(action: str) -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_search_records_the_kind_of_term_and_the_people_found_never_the_term(
    app: Flask, login_as: Any
) -> None:
    world = build_world()
    person = world.people()[0]
    client = login_as(world.user(Role.LINK_WORKER))
    for term, kind in ((person.nhs_number, "nhs_number"), (person.family_name, "name")):
        response = client.post(
            "/referrals/", data={"q": term, "csrf_token": csrf_token(client, "/referrals/")}
        )
        assert person.family_name in response.get_data(as_text=True)
        searched = _events("referral.searched")[-1]
        assert searched.detail == {"kind": kind}
    referral_id = str(world.ids("referral")[person.label])
    listed = [e for e in _events("referral.listed") if e.detail.get("search")]
    assert {(e.object_id, e.detail["search"]) for e in listed} >= {
        (referral_id, "nhs_number"),
        (referral_id, "name"),
    }
    rows = db.session.scalars(select(AuditEvent)).all()
    assert not any(
        person.nhs_number in str(e.detail) or person.family_name in str(e.detail) for e in rows
    )


def test_the_nhs_number_look_up_is_audited_although_the_form_saves_nothing(
    app: Flask, login_as: Any
) -> None:
    world = build_world()
    person = world.people()[0]
    client = login_as(world.user(Role.LINK_WORKER))
    response = client.post(
        "/referrals/new",
        data={
            "nhs_number": person.nhs_number,
            "action": "lookup",
            "csrf_token": csrf_token(client, "/referrals/new"),
        },
    )
    assert person.family_name in response.get_data(as_text=True)
    looked_up = [
        e for e in _events("patient.viewed") if e.detail.get("via") == "referral_form_lookup"
    ]
    referral = db.session.get(Referral, world.ids("referral")[person.label])
    assert referral is not None
    assert [(e.object_id, e.actor_id) for e in looked_up] == [
        (str(referral.patient_id), world.user(Role.LINK_WORKER).id)
    ]
