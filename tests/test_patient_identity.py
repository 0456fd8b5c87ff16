"""A person's identity across practices: a practice never rewrites, sees or finds another
practice's patient; changes are audited with old and new values; link workers reconcile."""

from __future__ import annotations

import logging
import re
from datetime import date

import pytest
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.intake.models import Patient, PatientReconciliation, Referral
from referrals.notifications.models import Notification
from referrals.vocab import ContactMethod, Sex
from tests import factories
from tests.conftest import submit
from tests.intake_helpers import pdf_text, referral_form
from tests.test_search_privacy import search

NHS = "9434765919"
# What Brookside made up for Abbey Road's patient: every detail different, email and needs blank.
MADE_UP = {
    "given_name": "Zebedee",
    "family_name": "Quarrington",
    "date_of_birth": "2/2/1990",
    "sex": "male",
    "postcode": "BS1 4DJ",
    "phone": "01632 960999",
    "email": "",
    "communication_needs": "",
    "access_needs": "",
}
API_MADE_UP = {
    "nhs_number": NHS,
    "given_name": "Zebedee",
    "family_name": "Quarrington",
    "date_of_birth": "1990-02-02",
    "sex": "male",
    "ethnicity": "white",
    "postcode": "BS1 4DJ",
    "phone": "01632 960999",
}


@pytest.fixture()
def abbey(app):
    return factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Abbey Road Surgery")


@pytest.fixture()
def brookside(app):
    return factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Brookside Practice")


@pytest.fixture()
def gp(login_as, abbey):
    return login_as(factories.make_user(Role.REFERRER, organisation=abbey))


@pytest.fixture()
def gp2_user(brookside):
    return factories.make_user(Role.REFERRER, organisation=brookside)


@pytest.fixture()
def gp2(login_as, gp2_user):
    return login_as(gp2_user)


def refer(client, data):
    """Send the referral form; once sent, open the referral as a browser would, so the "sent"
    message (which names the person) is shown there and not on the next page a test reads."""
    response = submit(client, "/referrals/new", data)
    if response.status_code == 302:
        client.get(response.headers["Location"])
    return response


def abbey_patient(gp, link_worker, *, close: bool = True) -> Referral:
    """Abbey Road refers Margaret Atkins, with email and needs; the link worker closes it."""
    response = refer(
        gp,
        referral_form(
            email="margaret@example.com",
            communication_needs="Uses a hearing aid",
            access_needs="Step-free access",
        ),
    )
    assert response.status_code == 302
    referral = db.session.scalar(select(Referral))
    if close:
        response = submit(
            link_worker,
            f"/referrals/{referral.id}/status",
            {"to": "declined", "reason": "Not ready yet"},
        )
        assert response.status_code == 302
    return referral


def refer_by_api(client, headers):
    """Brookside refers Abbey Road's patient over the API, with made-up details."""
    body = {
        "patient": API_MADE_UP,
        "referrer_type": "gp",
        "pathway": "mental_health",
        "reason": "Low mood",
        "consent": True,
    }
    return client.post("/api/v1/referrals", json=body, headers=headers)


def stored_person() -> Patient:
    db.session.expire_all()
    return db.session.scalar(select(Patient).where(Patient.nhs_number == NHS))


def assert_untouched(patient: Patient, abbey) -> None:
    assert patient.full_name == "Margaret Atkins"
    assert patient.date_of_birth == date(1948, 3, 15)
    assert patient.sex is Sex.FEMALE
    assert patient.gp_practice_id == abbey.id
    assert patient.email == "margaret@example.com"
    assert patient.communication_needs == "Uses a hearing aid"
    assert patient.access_needs == "Step-free access"
    assert patient.postcode == "GL1 2AB"


def actions(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == name)))


def test_another_practice_referring_a_known_person_leaves_their_record_untouched(
    gp, gp2, link_worker, abbey, brookside
):
    first = abbey_patient(gp, link_worker)
    response = refer(gp2, referral_form(**MADE_UP))
    assert response.status_code == 302
    referral = db.session.scalar(select(Referral).where(Referral.gp_practice_id == brookside.id))
    assert referral is not None and referral.patient_id == first.patient_id
    assert_untouched(stored_person(), abbey)

    # Brookside sees the person as it described them, never Abbey Road's record or referral.
    page = gp2.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Zebedee Quarrington" in page
    for secret in ("Margaret", "Atkins", "hearing aid", "Step-free", "15 March 1948"):
        assert secret not in page, secret
    assert f'href="/referrals/{first.id}"' not in page
    assert "Details to check" not in page
    listed = gp2.get("/referrals/").get_data(as_text=True)
    assert "Zebedee Quarrington" in listed and "Margaret" not in listed
    home = gp2.get("/").get_data(as_text=True)
    assert "Margaret" not in home

    # The link worker is told, and the referral shows them what differs.
    task = db.session.scalar(select(PatientReconciliation))
    assert task.referral_id == referral.id and task.is_open
    assert set(task.fields) == {
        "given_name",
        "family_name",
        "date_of_birth",
        "sex",
        "postcode",
        "phone",
        "gp_practice_id",
    }  # the blank email and needs propose nothing
    message = db.session.scalar(select(Notification).where(Notification.kind == "reconciliation"))
    assert message.user_id == link_worker.user.id
    assert message.link == f"/referrals/{referral.id}"
    seen = link_worker.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Details to check" in seen
    assert "Margaret" in seen and "Zebedee" in seen and "Brookside Practice" in seen
    opened = actions("patient.reconciliation_opened")
    assert len(opened) == 1 and "Zebedee" not in str(opened[0].detail)
    assert actions("patient.updated") == []


def test_the_letter_to_the_referring_practice_names_the_person_as_it_knows_them(
    gp, gp2, link_worker, brookside
):
    first = abbey_patient(gp, link_worker)
    refer(gp2, referral_form(**MADE_UP))
    referral = db.session.scalar(select(Referral).where(Referral.gp_practice_id == brookside.id))
    closed = submit(
        link_worker, f"/referrals/{referral.id}/status", {"to": "declined", "reason": "No"}
    )
    assert closed.status_code == 302
    letter = pdf_text(gp2.get(f"/referrals/{referral.id}/letter.pdf").data)
    assert "Zebedee Quarrington" in letter
    assert "Margaret" not in letter and "1948" not in letter
    own = pdf_text(gp.get(f"/referrals/{first.id}/letter.pdf").data)
    assert "Margaret Atkins" in own and "Zebedee" not in own


def test_a_search_never_matches_another_practices_record_of_a_person(gp, gp2, link_worker, abbey):
    abbey_patient(gp, link_worker)
    refer(gp2, referral_form(**MADE_UP))
    found = search(gp2, "Margaret").get_data(as_text=True)
    assert "Zebedee" not in found and "Margaret Atkins" not in found
    own = search(gp, "Margaret").get_data(as_text=True)
    assert "Margaret Atkins" in own and "Zebedee" not in own
    assert "Zebedee" in search(gp2, NHS).get_data(as_text=True)


def test_the_api_leaves_another_practices_person_untouched_and_answers_with_what_was_sent(
    gp, link_worker, abbey, brookside, gp2_user, api_client
):
    abbey_patient(gp, link_worker)
    client, headers = api_client(gp2_user)
    response = refer_by_api(client, headers)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["patient"]["given_name"] == "Zebedee"
    assert data["patient"]["gp_practice_id"] == brookside.id
    assert "Margaret" not in response.get_data(as_text=True)
    assert_untouched(stored_person(), abbey)
    assert db.session.scalar(select(PatientReconciliation)).referral_id == data["id"]
    listed = client.get("/api/v1/referrals", headers=headers).get_data(as_text=True)
    assert "Zebedee" in listed and "Margaret" not in listed


def test_the_link_worker_accepts_or_keeps_each_difference_and_each_is_audited(
    gp, gp2, link_worker, abbey, brookside, caplog
):
    caplog.set_level(logging.DEBUG)
    abbey_patient(gp, link_worker)
    refer(gp2, referral_form(**MADE_UP))
    referral = db.session.scalar(select(Referral).where(Referral.gp_practice_id == brookside.id))
    url = f"/referrals/{referral.id}/details"
    assert gp2.get(url).status_code == 403  # referrers do not reconcile

    choices = {name: "keep" for name in db.session.scalar(select(PatientReconciliation)).fields}
    missing = submit(link_worker, url, {**choices, "postcode": ""})
    assert missing.status_code == 200
    assert "Choose whether to use the new postcode or keep it" in missing.get_data(as_text=True)
    assert actions("patient.updated") == []

    response = submit(link_worker, url, {**choices, "postcode": "accept", "phone": "accept"})
    assert response.status_code == 302
    patient = stored_person()
    assert patient.postcode == "BS1 4DJ" and patient.phone == "01632960999"
    assert patient.full_name == "Margaret Atkins" and patient.gp_practice_id == abbey.id
    (updated,) = actions("patient.updated")
    assert updated.detail["changes"] == {
        "postcode": {"old": "GL1 2AB", "new": "BS1 4DJ"},
        "phone": {"old": "01632960001", "new": "01632960999"},
    }
    assert updated.actor_id == link_worker.user.id
    (decided,) = actions("patient.reconciled")
    assert decided.detail["kept"]["given_name"] == {"stored": "Margaret", "sent": "Zebedee"}
    assert set(decided.detail["accepted"]) == {"postcode", "phone"}
    page = link_worker.get(f"/referrals/{referral.id}").get_data(as_text=True)
    assert "Details checked" in page
    assert link_worker.get(url).status_code == 302  # nothing left to check
    assert actions("patient.reconciled") == [decided]
    # Application logs never carry the names that the audit entries hold.
    for name in ("Margaret", "Atkins", "Zebedee", "Quarrington"):
        assert name not in caplog.text


def test_accepting_the_practice_moves_the_person_to_the_practice_that_referred_them(
    gp, gp2, link_worker, brookside
):
    abbey_patient(gp, link_worker)
    refer(gp2, referral_form(**MADE_UP))
    referral = db.session.scalar(select(Referral).where(Referral.gp_practice_id == brookside.id))
    fields = db.session.scalar(select(PatientReconciliation)).fields
    choices = {name: "keep" for name in fields} | {"gp_practice_id": "accept"}
    assert submit(link_worker, f"/referrals/{referral.id}/details", choices).status_code == 302
    assert stored_person().gp_practice_id == brookside.id
    # Now Brookside's patient, their stored record is what Brookside sees.
    assert "Margaret Atkins" in gp2.get(f"/referrals/{referral.id}").get_data(as_text=True)


def test_the_own_practice_re_referring_never_blanks_a_field_and_audits_each_change(
    gp, link_worker, abbey
):
    abbey_patient(gp, link_worker)
    response = refer(
        gp,
        referral_form(
            postcode="GL2 3DB",
            email="",
            communication_needs="",
            access_needs="",
            preferred_contact="phone",
        ),
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    patient = stored_person()
    assert patient.postcode == "GL2 3DB"
    assert patient.email == "margaret@example.com"
    assert patient.communication_needs == "Uses a hearing aid"
    assert patient.access_needs == "Step-free access"
    (updated,) = actions("patient.updated")
    assert updated.detail["changes"] == {"postcode": {"old": "GL1 2AB", "new": "GL2 3DB"}}
    assert updated.object_id == str(patient.id)
    assert db.session.scalar(select(func.count()).select_from(PatientReconciliation)) == 0


def test_a_duplicate_outside_scope_says_only_that_the_link_workers_will_pick_it_up(
    gp, gp2, link_worker, abbey, gp2_user, api_client
):
    first = abbey_patient(gp, link_worker, close=False)
    received = first.received_on
    sent = refer(gp2, referral_form(**MADE_UP))
    found = submit(gp2, "/referrals/new", {"nhs_number": NHS, "action": "lookup"})
    for response in (sent, found):
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "The link worker service will pick this up" in page
        assert "already supports this person" in page
        assert f"/referrals/{first.id}" not in page
        assert not re.search(rf"\bR{first.id}\b", page)
        assert received.strftime("%-d %B %Y") not in page
        assert "Received" not in page.split("<h1>", 1)[1].split("<form", 1)[0]
        assert "Margaret" not in page
        assert "&lt;p&gt;" not in page
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 1
    assert_untouched(stored_person(), abbey)
    # The link worker is told about the attempt, with a link to the open referral.
    message = db.session.scalar(
        select(Notification).where(Notification.kind == "duplicate_referral")
    )
    assert message.link == f"/referrals/{first.id}" and "Brookside Practice" in message.text
    assert message.user_id == link_worker.user.id

    client, headers = api_client(gp2_user)
    response = refer_by_api(client, headers)
    assert response.status_code == 409
    problem = response.get_json()
    assert "open_referral_id" not in problem
    assert f"R{first.id}" not in problem["detail"]
    assert "will pick this up" in problem["detail"]


def test_find_and_send_agree_within_scope_and_the_warning_is_text_not_markup(gp, link_worker):
    first = abbey_patient(gp, link_worker, close=False)
    sent = refer(gp, referral_form(reason="Second try"))
    found = submit(gp, "/referrals/new", {"nhs_number": NHS, "action": "lookup"})
    for response in (sent, found):
        page = response.get_data(as_text=True)
        assert "This person already has an open referral" in page
        assert f'<p><a href="/referrals/{first.id}">Open referral R{first.id}</a>' in page
        assert "&lt;p&gt;" not in page and "&lt;a" not in page
    told = select(Notification).where(Notification.kind == "duplicate_referral")
    assert db.session.scalar(told) is None


def test_other_referrals_on_the_page_are_only_those_in_scope(gp, gp2, link_worker, brookside):
    first = abbey_patient(gp, link_worker)
    refer(
        gp2,
        referral_form(**MADE_UP, new_episode_reason="Moved practice, new need"),
    )
    second = db.session.scalar(select(Referral).where(Referral.gp_practice_id == brookside.id))
    page = gp2.get(f"/referrals/{second.id}").get_data(as_text=True)
    assert "Other referrals" not in page and f"R{first.id}" not in page
    triage = link_worker.get(f"/referrals/{second.id}").get_data(as_text=True)
    assert f'href="/referrals/{first.id}"' in triage
    assert gp.get(f"/referrals/{second.id}").status_code == 404
    mine = gp.get(f"/referrals/{first.id}").get_data(as_text=True)
    assert f"R{second.id}" not in mine and "Zebedee" not in mine


def test_a_link_worker_referring_a_known_person_updates_and_audits_without_a_task(
    gp, link_worker, abbey, brookside
):
    abbey_patient(gp, link_worker)
    response = refer(
        link_worker,
        referral_form(
            gp_practice=str(brookside.id),
            referrer_type="link_worker",
            email="",
            preferred_contact=ContactMethod.PHONE.value,
        ),
    )
    assert response.status_code == 302
    patient = stored_person()
    assert patient.gp_practice_id == brookside.id
    assert patient.email == "margaret@example.com"
    (updated,) = actions("patient.updated")
    assert updated.detail["changes"] == {"gp_practice_id": {"old": abbey.id, "new": brookside.id}}
    assert db.session.scalar(select(func.count()).select_from(PatientReconciliation)) == 0
