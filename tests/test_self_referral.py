"""Self-referral from the public finder: through the intake service, protected from abuse."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from referrals import clock
from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.intake.models import Patient, PatientReconciliation, Referral
from referrals.intake.validation import contactable, reachable
from referrals.notifications.models import Notification
from referrals.vocab import ReferrerType
from tests import factories
from tests.conftest import csrf_token
from tests.factories import make_course
from tests.intake_helpers import make_referral

URL = "/find/refer-yourself"


@pytest.fixture()
def scene(app):
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Quayside Surgery")
    worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(title="Singing for Better Breathing")
    db.session.commit()
    return {"practice": practice, "worker": worker, "course": course}


def form(scene: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = {
        "given_name": "Ada",
        "family_name": "Quillfeather",
        "date_of_birth": "15 3 1948",
        "nhs_number": "",
        "postcode": "gl1 2ab",
        "gp_practice": str(scene["practice"].id),
        "phone": "01632 960 001",
        "email": "",
        "preferred_contact": "phone",
        "hopes": "I used to sing in a choir and I miss it",
        "pathway": "",
        "access_needs": "A chair near the door",
        "course": str(scene["course"].id),
        "consent": "y",
        "website": "",
    }
    data.update(changes)
    return data


def send(client, scene, **changes: Any) -> Any:
    token = csrf_token(client, f"{URL}?course={scene['course'].id}")
    return client.post(URL, data={**form(scene, **changes), "csrf_token": token})


def referral_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Referral)) or 0


def test_a_person_refers_themselves_onto_the_link_workers_caseload(client, scene, login_as):
    response = send(client, scene)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/find/refer-yourself/sent")
    assert "What happens next" in client.get(response.headers["Location"]).get_data(as_text=True)
    referral = db.session.scalars(select(Referral)).one()
    assert referral.referrer_type is ReferrerType.SELF
    assert referral.course_of_interest_id == scene["course"].id
    assert referral.interests == ["singing"]
    assert referral.reason == "I used to sing in a choir and I miss it"
    assert referral.referred_by_id is None
    assert referral.patient.nhs_number is None and referral.patient.postcode == "GL1 2AB"
    assert referral.patient.date_of_birth == date(1948, 3, 15)
    assert db.session.scalars(select(PatientReconciliation)).all() == []
    told = db.session.scalars(select(Notification).where(Notification.kind == "self_referral"))
    assert [n.user_id for n in told] == [scene["worker"].id]
    worker = login_as(scene["worker"])
    caseload = worker.get("/referrals/").get_data(as_text=True)
    assert "Quillfeather" in caseload
    page = worker.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Singing for Better Breathing" in page and "Self-referral" in page


def test_a_form_filled_in_by_a_program_is_thanked_and_dropped(client, scene):
    response = send(client, scene, website="http://spam.example")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/find/refer-yourself/sent")
    assert referral_count() == 0


def test_asking_twice_makes_one_referral_and_says_nothing_different(client, scene):
    first = send(client, scene)
    second = send(client, scene, given_name="ADA", hopes="Please, I would love to join")
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert referral_count() == 1


def test_a_known_nhs_number_never_rewrites_the_stored_person(client, scene):
    nhs = "9434765919"
    staff = factories.make_user(Role.LINK_WORKER)
    existing = make_referral(staff, scene["practice"], nhs=nhs, family_name="Original")
    db.session.commit()
    response = send(client, scene, nhs_number="943 476 5919", family_name="Changed")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/find/refer-yourself/sent")
    db.session.expire_all()
    person = db.session.scalars(select(Patient).where(Patient.nhs_number == nhs)).one()
    assert person.family_name == "Original"
    assert referral_count() == 1  # the open referral is picked up, not duplicated
    told = db.session.scalars(
        select(Notification).where(Notification.kind == "duplicate_referral")
    ).all()
    assert told and all(f"R{existing.id}" in n.text for n in told)


def test_a_known_person_without_an_open_referral_goes_to_reconciliation(client, scene):
    from referrals.intake.lifecycle import Status
    from referrals.intake.services import transition

    nhs = "9434765919"
    staff = factories.make_user(Role.LINK_WORKER)
    old = make_referral(staff, scene["practice"], nhs=nhs, family_name="Original")
    transition(staff, old, Status.DECLINED, reason="Not now", today=clock.today())
    db.session.commit()
    assert send(client, scene, nhs_number="9434765919", family_name="Changed").status_code == 302
    db.session.expire_all()
    person = db.session.scalars(select(Patient).where(Patient.nhs_number == nhs)).one()
    assert person.family_name == "Original"
    new = db.session.scalars(select(Referral).where(Referral.id != old.id)).one()
    assert new.patient_id == person.id and new.referrer_type is ReferrerType.SELF
    task = db.session.scalars(select(PatientReconciliation)).one()
    assert "family_name" in task.fields and task.is_open


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"given_name": ""}, "given_name", "Enter your first name"),
        ({"date_of_birth": "31 2 1990"}, "date_of_birth", "Enter a real date"),
        (
            {"date_of_birth": (clock.today() + timedelta(days=2)).strftime("%d %m %Y")},
            "date_of_birth",
            "must be today or in the past",
        ),
        ({"nhs_number": "1234567890"}, "nhs_number", "not a valid NHS number"),
        ({"postcode": "nowhere"}, "postcode", "Enter a real UK postcode"),
        ({"gp_practice": "999999"}, "gp_practice", "Choose your GP practice"),
        ({"phone": ""}, "preferred_contact", "Enter a phone number"),
        ({"hopes": "x" * 2001}, "hopes", "2000 characters or fewer"),
        ({"consent": ""}, "consent", "You need to agree"),
        ({"given_name": "Ada\x00"}, "given_name", "control characters"),
    ],
)
def test_bad_input_is_named_at_its_field_and_the_rest_kept(client, scene, changes, field, message):
    response = send(client, scene, **changes)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in page
    assert f'href="#{field}' in page
    assert "A chair near the door" in page  # what was typed is kept
    assert referral_count() == 0


def test_the_way_of_contact_follows_the_referral_forms_rule_said_to_the_person(client, scene):
    said = reachable("text", "", "ada@example.com", to_the_person=True)["preferred_contact"]
    page = send(client, scene, preferred_contact="text", phone="", email="ada@example.com")
    assert said in page.get_data(as_text=True)
    assert 'href="#preferred_contact' in page.get_data(as_text=True)
    assert referral_count() == 0


def test_with_no_way_of_contact_chosen_the_person_still_hears_one_detail_is_needed(client, scene):
    data = {**form(scene, phone="", email=""), "csrf_token": csrf_token(client, URL)}
    del data["preferred_contact"]
    page = client.post(URL, data=data).get_data(as_text=True)
    assert "Select how we should contact you" in page
    assert contactable("", "")["phone"] in page
    assert 'href="#phone' in page
    assert referral_count() == 0


def test_the_form_needs_its_csrf_token_and_a_reasonable_size(client, scene):
    assert client.post(URL, data=form(scene)).status_code == 400
    huge = send(client, scene, hopes="x" * 40_000)
    assert huge.status_code == 413
    assert referral_count() == 0


def test_one_client_may_send_only_a_few(app, client, scene):
    app.config["RATELIMIT_SELF_REFERRAL"] = "2 per hour"
    try:
        statuses = [send(client, scene, given_name=f"Ada{n}").status_code for n in range(3)]
    finally:
        app.config["RATELIMIT_SELF_REFERRAL"] = "5 per hour;20 per day"
    assert statuses == [302, 302, 429]
    assert referral_count() == 2
