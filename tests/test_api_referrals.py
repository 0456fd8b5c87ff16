"""Referral endpoints of the JSON API: intake, idempotency, scope, lists and the lifecycle."""

from __future__ import annotations

import copy
import itertools
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.idempotency import request_fingerprint
from referrals.intake.lifecycle import SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING, Actor, Status
from referrals.intake.models import IdempotentRequest, Patient, Referral, ReferralTransition
from referrals.intake.services import (
    transition,
)
from referrals.vocab import Pathway
from tests import factories, intake_helpers
from tests.query_counts import counting_queries

URL = "/api/v1/referrals"
_serial = itertools.count(400_000_001)  # the range England allocates from


def new_nhs_number() -> str:
    """A fresh NHS number with a valid modulus 11 check digit."""
    while True:
        base = f"{next(_serial):09d}"
        check = 11 - sum(int(d) * w for d, w in zip(base, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return base + str(check)


def body(**overrides: Any) -> dict[str, Any]:
    """A valid referral body; `patient__field=...` overrides a patient field."""
    payload: dict[str, Any] = {
        "patient": {
            "nhs_number": "943 476 5919",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "date_of_birth": "1948-03-15",
            "sex": "female",
            "ethnicity": "white",
            "postcode": "gl12ab",
            "phone": "07700 900 982",
            "email": "Ada@Example.com",
        },
        "referrer_type": "gp",
        "pathway": "mental_health",
        "reason": "Low mood since bereavement",
        "interests": ["singing", "crafts"],
        "consent": True,
    }
    for name, value in overrides.items():
        if name.startswith("patient__"):
            payload["patient"][name.removeprefix("patient__")] = value
        else:
            payload[name] = value
    return payload


def without(payload: dict[str, Any], *names: str) -> dict[str, Any]:
    payload = copy.deepcopy(payload)
    for name in names:
        target = payload
        *parents, last = name.split(".")
        for parent in parents:
            target = target[parent]
        del target[last]
    return payload


def stored() -> tuple[int, int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Patient)) or 0,
        db.session.scalar(select(func.count()).select_from(Referral)) or 0,
        db.session.scalar(select(func.count()).select_from(IdempotentRequest)) or 0,
    )


def audit_actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


@pytest.fixture()
def referrer(api_client):
    """(client, headers, user) for a referrer at their own GP practice."""
    user = factories.make_user(Role.REFERRER)
    client, headers = api_client(user)
    return client, headers, user


@pytest.fixture()
def link_worker(api_client):
    user = factories.make_user(Role.LINK_WORKER)
    client, headers = api_client(user)
    return client, headers, user


def make_referral(actor, practice, *, pathway=Pathway.MENTAL_HEALTH, moves=()) -> Referral:
    """A referral recorded through the service, then moved through `moves`."""
    referral = intake_helpers.make_referral(
        actor,
        practice,
        nhs=new_nhs_number(),
        today=clock.today(),
        pathway=pathway,
        received_on=clock.today() - timedelta(days=10),
    )
    for target in moves:
        by = Actor.SYSTEM if target in (Status.ENROLLED, Status.WAITLISTED) else Actor.PERSON
        transition(actor, referral, target, reason="because", by=by, today=clock.today())
    db.session.commit()
    return referral


# --- POST /referrals ------------------------------------------------------------------------


def test_a_referrer_refers_for_their_own_practice(referrer):
    client, headers, user = referrer
    response = client.post(URL, json=body(), headers=headers)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert response.headers["Location"] == f"{URL}/{data['id']}"
    assert data["status"] == "received"
    assert data["gp_practice_id"] == user.organisation_id
    assert data["referred_by_id"] == user.id
    assert data["interests"] == ["singing", "crafts"]
    assert data["received_on"] == clock.today().isoformat()
    patient = data["patient"]
    assert patient["nhs_number"] == "9434765919"
    assert patient["postcode"] == "GL1 2AB"
    assert patient["phone"] == "07700900982"
    assert patient["email"] == "ada@example.com"
    assert patient["preferred_contact"] == "phone"
    assert patient["gp_practice_id"] == user.organisation_id
    [step] = data["timeline"]
    assert step["from"] is None and step["to"] == "received"
    assert step["actor"] == user.name
    assert datetime.fromisoformat(step["at"]).utcoffset() == timedelta(0)
    assert stored() == (1, 1, 0)
    assert "referral.created" in audit_actions()


def test_a_link_worker_refers_for_a_named_practice(link_worker):
    client, headers, user = link_worker
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    payload = body(
        gp_practice_id=practice.id,
        referrer_type="link_worker",
        patient__phone=None,
        received_on=(clock.today() - timedelta(days=30)).isoformat(),
        risk_flag=True,
        risk_note="Lives alone",
        patient__communication_needs="Uses BSL",
        patient__access_needs="Step-free access",
    )
    response = client.post(URL, json=payload, headers=headers)
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["gp_practice_id"] == practice.id
    assert data["assigned_to_id"] == user.id
    assert data["risk_flag"] is True and data["risk_note"] == "Lives alone"
    assert data["received_on"] == (clock.today() - timedelta(days=30)).isoformat()
    assert data["timeline"][0]["effective_on"] == data["received_on"]
    assert data["patient"]["preferred_contact"] == "email"  # no phone given
    assert data["patient"]["communication_needs"] == "Uses BSL"


def test_a_referrer_may_name_their_own_practice(referrer):
    client, headers, user = referrer
    response = client.post(URL, json=body(gp_practice_id=user.organisation_id), headers=headers)
    assert response.status_code == 201


@pytest.mark.parametrize("practice", ["other", "provider", "inactive", "unknown", "text", "bool"])
def test_link_workers_must_name_an_active_gp_practice(link_worker, practice):
    client, headers, _user = link_worker
    ids = {
        "other": None,
        "provider": factories.make_organisation(OrganisationKind.PROVIDER).id,
        "inactive": factories.make_organisation(OrganisationKind.GP_PRACTICE, active=False).id,
        "unknown": 999_999,
        "text": "1",
        "bool": True,
    }
    payload = body() if practice == "other" else body(gp_practice_id=ids[practice])
    response = client.post(URL, json=payload, headers=headers)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["gp_practice_id"]
    assert stored() == (0, 0, 0)


def test_a_referrer_cannot_refer_for_another_practice(referrer):
    client, headers, _user = referrer
    elsewhere = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    response = client.post(URL, json=body(gp_practice_id=elsewhere.id), headers=headers)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["gp_practice_id"]
    assert stored() == (0, 0, 0)


def _years_ago(years: int, days: int = 0) -> str:
    today = clock.today()
    return (today.replace(year=today.year - years) - timedelta(days=days)).isoformat()


BAD_INPUT = [
    # (overrides or fields to drop, the field the error is reported at)
    ({"patient__nhs_number": "943 476 5918"}, "patient.nhs_number"),  # wrong check digit
    ({"patient__nhs_number": "94347659"}, "patient.nhs_number"),
    ({"patient__nhs_number": 9434765919}, "patient.nhs_number"),
    ({"patient__nhs_number": "9" * 21}, "patient.nhs_number"),
    ("patient.nhs_number", "patient.nhs_number"),
    ("patient.given_name", "patient.given_name"),
    ({"patient__given_name": "   "}, "patient.given_name"),
    ({"patient__given_name": "x" * 101}, "patient.given_name"),
    ({"patient__family_name": "x" * 101}, "patient.family_name"),
    ({"patient__family_name": ["Lovelace"]}, "patient.family_name"),
    ("patient.date_of_birth", "patient.date_of_birth"),
    ({"patient__date_of_birth": "2999-01-01"}, "patient.date_of_birth"),
    ({"patient__date_of_birth": _years_ago(120, days=1)}, "patient.date_of_birth"),
    ({"patient__date_of_birth": "15/03/1948"}, "patient.date_of_birth"),
    ({"patient__date_of_birth": "1948-02-30"}, "patient.date_of_birth"),
    ({"patient__date_of_birth": 19480315}, "patient.date_of_birth"),
    ({"patient__sex": "unknown"}, "patient.sex"),
    ("patient.sex", "patient.sex"),
    ({"patient__ethnicity": "british"}, "patient.ethnicity"),
    ("patient.ethnicity", "patient.ethnicity"),
    ({"patient__postcode": "12345"}, "patient.postcode"),
    ({"patient__postcode": "GL1 2AB" * 3}, "patient.postcode"),
    ("patient.postcode", "patient.postcode"),
    ({"patient__phone": "12345"}, "patient.phone"),
    ({"patient__phone": 7700900982}, "patient.phone"),
    ({"patient__email": "not-an-email"}, "patient.email"),
    ({"patient__email": "a@" + "b" * 260 + ".com"}, "patient.email"),
    ({"patient__phone": None, "patient__email": None}, "patient.phone"),
    ({"patient__preferred_contact": "in_person"}, "patient.preferred_contact"),
    ({"patient__email": None, "patient__preferred_contact": "email"}, "patient.preferred_contact"),
    ({"patient__phone": None, "patient__preferred_contact": "text"}, "patient.preferred_contact"),
    ({"patient__communication_needs": "x" * 4001}, "patient.communication_needs"),
    ({"patient__access_needs": "x" * 4001}, "patient.access_needs"),
    ({"patient__shoe_size": 9}, "patient.shoe_size"),
    ("patient", "patient"),
    ({"patient": ["Ada"]}, "patient"),
    ({"referrer_type": "nurse"}, "referrer_type"),
    ("referrer_type", "referrer_type"),
    ({"pathway": "knees"}, "pathway"),
    ("pathway", "pathway"),
    ("reason", "reason"),
    ({"reason": "x" * 4001}, "reason"),
    ({"reason": 42}, "reason"),
    ({"interests": "singing"}, "interests"),
    ({"interests": ["knitting"]}, "interests"),
    ({"interests": [1]}, "interests"),
    ({"consent": False}, "consent"),
    ("consent", "consent"),
    ({"consent": "true"}, "consent"),
    ({"risk_flag": True}, "risk_note"),
    ({"risk_flag": "yes"}, "risk_flag"),
    ({"risk_note": "x" * 4001}, "risk_note"),
    ({"received_on": (clock.today() + timedelta(days=1)).isoformat()}, "received_on"),
    ({"received_on": "yesterday"}, "received_on"),
    ({"received_on": "0001-01-01"}, "received_on"),
    ({"received_on": "1999-12-31"}, "received_on"),
    ({"new_episode_reason": "x" * 4001}, "new_episode_reason"),
    ({"risk_flagged": True}, "risk_flagged"),  # a mistyped field is refused, not ignored
]


@pytest.mark.parametrize(("change", "field"), BAD_INPUT)
def test_bad_input_is_a_422_at_the_field_and_nothing_is_stored(referrer, change, field):
    client, headers, _user = referrer
    payload = without(body(), change) if isinstance(change, str) else body(**change)
    response = client.post(URL, json=payload, headers={**headers, "Idempotency-Key": "k1"})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["status"] == 422
    assert list(problem["errors"]) == [field], problem["errors"]
    assert all(isinstance(m, str) and m for m in problem["errors"][field])
    assert stored() == (0, 0, 0)
    assert "referral.created" not in audit_actions()


def test_every_invalid_field_is_reported_at_once(referrer):
    client, headers, _user = referrer
    payload = body(patient__nhs_number="123", pathway="knees", consent=False)
    errors = client.post(URL, json=payload, headers=headers).get_json()["errors"]
    assert set(errors) == {"patient.nhs_number", "pathway", "consent"}


def test_the_page_forms_messages_are_used(referrer):
    client, headers, _user = referrer
    payload = body(patient__nhs_number="943 476 5918", patient__phone=None, patient__email=None)
    errors = client.post(URL, json=payload, headers=headers).get_json()["errors"]
    assert errors["patient.nhs_number"] == [
        "This is not a valid NHS number. Check it and try again"
    ]
    assert errors["patient.phone"] == ["Enter a phone number or an email address"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("[1, 2]", "application/json"),
        ('"a referral"', "application/json"),
        ("42", "application/json"),
        ("null", "application/json"),
        ("", "application/json"),
        ("{not json", "application/json"),
        ("[" * 100_000, "application/json"),
        ('{"patient": {}}', "text/plain"),
        (None, None),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_422(referrer, data, content_type):
    client, headers, _user = referrer
    response = client.post(URL, data=data, content_type=content_type, headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert list(response.get_json()["errors"]) == ["body"]
    assert stored() == (0, 0, 0)


def test_an_open_referral_is_a_409_naming_it_until_a_new_episode_is_explained(referrer):
    client, headers, _user = referrer
    first = client.post(URL, json=body(), headers=headers).get_json()
    response = client.post(URL, json=body(reason="Again"), headers=headers)
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["open_referral_id"] == first["id"]
    assert stored() == (1, 1, 0)

    payload = body(reason="Again", new_episode_reason="Different need: chronic pain")
    second = client.post(URL, json=payload, headers=headers)
    assert second.status_code == 201
    data = second.get_json()
    assert data["patient"]["id"] == first["patient"]["id"]
    assert data["new_episode_reason"] == "Different need: chronic pain"
    assert data["timeline"][0]["reason"] == "Different need: chronic pain"
    assert stored() == (1, 2, 0)


# --- Idempotency-Key --------------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_first_answer(referrer):
    client, headers, _user = referrer
    keyed = {**headers, "Idempotency-Key": "referral-0001"}
    first = client.post(URL, json=body(), headers=keyed)
    retry = client.post(URL, json=body(), headers=keyed)
    assert first.status_code == retry.status_code == 201
    assert retry.get_json() == first.get_json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert stored() == (1, 1, 1)
    # Key order and spacing do not make it a different request.
    reordered = dict(reversed(list(body().items())))
    assert client.post(URL, json=reordered, headers=keyed).get_json() == first.get_json()
    assert stored() == (1, 1, 1)


def test_the_same_key_with_a_different_body_is_refused(referrer):
    client, headers, _user = referrer
    keyed = {**headers, "Idempotency-Key": "referral-0002"}
    assert client.post(URL, json=body(), headers=keyed).status_code == 201
    response = client.post(URL, json=body(reason="Something else"), headers=keyed)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "different request" in response.get_json()["detail"]
    assert list(response.get_json()["errors"]) == ["Idempotency-Key"]
    assert stored() == (1, 1, 1)


def test_keys_belong_to_their_user(api_client, referrer):
    client, headers, user = referrer
    colleague = factories.make_user(Role.REFERRER, organisation=user.organisation)
    other_client, other_headers = api_client(colleague)
    assert client.post(URL, json=body(), headers={**headers, "Idempotency-Key": "k"}).status_code
    second = body(patient__nhs_number=new_nhs_number())
    response = other_client.post(
        URL, json=second, headers={**other_headers, "Idempotency-Key": "k"}
    )
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert stored() == (2, 2, 2)


def test_a_refused_request_is_not_stored_so_a_corrected_retry_goes_through(referrer):
    client, headers, _user = referrer
    keyed = {**headers, "Idempotency-Key": "referral-0003"}
    assert client.post(URL, json=body(consent=False), headers=keyed).status_code == 422
    assert client.post(URL, json=body(), headers=keyed).status_code == 201
    assert client.post(URL, json=body(), headers=keyed).status_code == 201
    assert stored() == (1, 1, 1)


@pytest.mark.parametrize(("key", "status"), [("k" * 200, 201), ("k" * 201, 422), ("  ", 422)])
def test_idempotency_keys_are_at_most_200_characters(referrer, key, status):
    client, headers, _user = referrer
    response = client.post(URL, json=body(), headers={**headers, "Idempotency-Key": key})
    assert response.status_code == status
    if status == 422:
        assert list(response.get_json()["errors"]) == ["Idempotency-Key"]
        assert stored() == (0, 0, 0)


def test_identical_requests_at_the_same_moment_record_one_referral(referrer):
    client, headers, _user = referrer
    keyed = {**headers, "Idempotency-Key": "referral-race"}
    db.session.commit()
    answers: list[Any] = []
    start = threading.Barrier(2)

    def send() -> None:
        start.wait()
        answers.append(client.application.test_client().post(URL, json=body(), headers=keyed))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].get_json() == answers[1].get_json()
    assert stored() == (1, 1, 1)


def test_a_key_claimed_by_a_request_still_running_replays_that_requests_answer(referrer):
    """The unique (user, key) constraint settles the race: the later request waits for the
    earlier one's transaction, then answers with what it stored."""
    client, headers, user = referrer
    keyed = {**headers, "Idempotency-Key": "referral-held"}
    first_answer = {"id": 4242, "status": "received", "answer": "from the first request"}
    user_id = user.id
    db.session.commit()  # and no ORM reads below: they would take SQLite's write lock here
    answers: list[Any] = []
    with db.engine.connect() as connection:
        held = connection.begin()  # the first request, mid-way: key claimed, not yet committed
        connection.execute(
            insert(IdempotentRequest).values(
                user_id=user_id,
                key="referral-held",
                endpoint="api.create_referral_view",
                request_hash=request_fingerprint(body()),
                status_code=201,
                body=first_answer,
                created_at=datetime.now(ZoneInfo("UTC")),
            )
        )
        second = threading.Thread(
            target=lambda: answers.append(client.post(URL, json=body(), headers=keyed))
        )
        second.start()
        time.sleep(0.5)  # let the second request reach the key
        held.commit()
    second.join(30)
    [answer] = answers
    assert answer.status_code == 201
    assert answer.get_json() == first_answer
    assert stored() == (0, 0, 1)


# --- GET /referrals and GET /referrals/{id} -----------------------------------------------------


def test_referrers_see_their_own_practices_referrals_only(api_client, referrer, link_worker):
    client, headers, user = referrer
    lw_client, lw_headers, lw_user = link_worker
    ours = make_referral(lw_user, user.organisation)
    theirs = make_referral(lw_user, factories.make_organisation(OrganisationKind.GP_PRACTICE))

    listed = client.get(URL, headers=headers).get_json()
    assert [item["id"] for item in listed["items"]] == [ours.id]
    assert client.get(f"{URL}/{ours.id}", headers=headers).status_code == 200
    response = client.get(f"{URL}/{theirs.id}", headers=headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"

    assert lw_client.get(URL, headers=lw_headers).get_json()["total"] == 2
    admin_client, admin_headers = api_client(Role.ADMIN)
    assert admin_client.get(URL, headers=admin_headers).get_json()["total"] == 2
    assert admin_client.get(f"{URL}/{theirs.id}", headers=admin_headers).status_code == 200


@pytest.mark.parametrize("role", [Role.ARTIST, Role.COMMISSIONER])
def test_artists_and_commissioners_may_not_read_referrals(api_client, link_worker, role):
    _c, _h, lw_user = link_worker
    referral = make_referral(lw_user, factories.make_organisation(OrganisationKind.GP_PRACTICE))
    client, headers = api_client(role)
    for url in (URL, f"{URL}/{referral.id}"):
        response = client.get(url, headers=headers)
        assert response.status_code == 403
        assert response.mimetype == "application/problem+json"
    assert client.post(URL, json=body(), headers=headers).status_code == 403


def test_a_referral_reads_with_its_patient_and_timeline_and_the_view_is_audited(link_worker):
    client, headers, user = link_worker
    referral = make_referral(user, factories.make_organisation(), moves=[Status.ASSESSED])
    response = client.get(f"{URL}/{referral.id}", headers=headers)
    assert response.status_code == 200
    data = response.get_json()
    assert data["status"] == "assessed"
    assert data["snomed_code"] == SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING
    assert data["patient"]["nhs_number"] == referral.patient.nhs_number
    assert [(s["from"], s["to"]) for s in data["timeline"]] == [
        (None, "received"),
        ("received", "assessed"),
    ]
    assert data["timeline"][1]["actor"] == user.name
    assert data["timeline"][1]["snomed_code"] == SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING
    viewed = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "referral.viewed"))
    assert viewed is not None
    assert (viewed.actor_id, viewed.object_id) == (user.id, str(referral.id))


def test_unknown_referrals_are_404_problems(link_worker):
    client, headers, _user = link_worker
    response = client.get(f"{URL}/987654", headers=headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_the_list_is_paginated(link_worker):
    client, headers, user = link_worker
    practice = factories.make_organisation()
    ids = [make_referral(user, practice).id for _ in range(5)]
    page = client.get(f"{URL}?per_page=2&page=3", headers=headers).get_json()
    assert (page["page"], page["per_page"], page["total"]) == (3, 2, 5)
    assert [item["id"] for item in page["items"]] == [ids[0]]  # newest first, oldest last
    assert set(page["items"][0]) >= {"id", "status", "patient", "timeline", "snomed_code"}
    response = client.get(f"{URL}?per_page=101", headers=headers)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == ["per_page"]


def test_listing_is_audited_with_the_referrals_shown(link_worker):
    client, headers, user = link_worker
    referral = make_referral(user, factories.make_organisation())
    client.get(URL, headers=headers)
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "referral.listed"))
    assert [(e.object_type, e.object_id) for e in events] == [("referral", str(referral.id))]


def test_the_list_filters(link_worker):
    client, headers, user = link_worker
    practice, other = factories.make_organisation(), factories.make_organisation()
    received = make_referral(user, practice)
    contacting = make_referral(user, practice, moves=[Status.CONTACTING])
    declined = make_referral(
        user, other, pathway=Pathway.DEMENTIA, moves=[Status.CONTACTING, Status.DECLINED]
    )

    def ids(query: str) -> set[int]:
        response = client.get(f"{URL}?{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return {item["id"] for item in response.get_json()["items"]}

    assert ids("status=received") == {received.id}
    assert ids("status=received&status=declined") == {received.id, declined.id}
    assert ids("pathway=dementia") == {declined.id}
    assert ids(f"gp_practice_id={practice.id}") == {received.id, contacting.id}
    nhs = contacting.patient.nhs_number
    assert ids(f"nhs_number={nhs[:3]}%20{nhs[3:6]}%20{nhs[6:]}") == {contacting.id}
    assert ids(f"gp_practice_id={other.id}&status=received") == set()


def test_bad_filters_are_422_at_the_parameter(link_worker):
    client, headers, _user = link_worker
    response = client.get(
        f"{URL}?status=lost&pathway=knees&gp_practice_id=x&nhs_number=123", headers=headers
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {
        "status",
        "pathway",
        "gp_practice_id",
        "nhs_number",
    }


def test_a_referrer_filtering_by_another_practice_sees_nothing(referrer, link_worker):
    client, headers, _user = referrer
    _c, _h, lw_user = link_worker
    elsewhere = factories.make_organisation()
    make_referral(lw_user, elsewhere)
    page = client.get(f"{URL}?gp_practice_id={elsewhere.id}", headers=headers).get_json()
    assert page["total"] == 0 and page["items"] == []


def _count_list_queries(client, headers) -> int:
    with counting_queries() as statements:
        response = client.get(f"{URL}?per_page=100", headers=headers)
    assert response.status_code == 200
    return len(statements)


def test_the_list_takes_the_same_number_of_queries_for_5_and_40_referrals(link_worker):
    client, headers, user = link_worker
    practices = [factories.make_organisation() for _ in range(3)]

    def add(count: int) -> None:
        # Each referral has its own practice mix, patient and link worker, so a lazy load per
        # row would show as extra queries.
        for n in range(count):
            worker = factories.make_user(
                Role.LINK_WORKER, organisation=user.organisation, password=None
            )
            make_referral(worker, practices[n % 3], moves=[Status.CONTACTING, Status.ASSESSED])

    add(5)
    with_5 = _count_list_queries(client, headers)
    add(35)
    with_40 = _count_list_queries(client, headers)
    assert with_5 == with_40


# --- POST /referrals/{id}/transitions --------------------------------------------------------


def test_a_link_worker_moves_a_referral_along(link_worker):
    client, headers, user = link_worker
    referral = make_referral(user, factories.make_organisation())
    url = f"{URL}/{referral.id}/transitions"
    on = (clock.today() - timedelta(days=2)).isoformat()
    response = client.post(
        url, json={"to": "contacting", "note": "Rang twice", "on": on}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    data = response.get_json()
    assert data["status"] == "contacting"
    step = data["timeline"][-1]
    assert (step["from"], step["to"], step["note"]) == ("received", "contacting", "Rang twice")
    assert step["effective_on"] == on and step["actor"] == user.name

    closing = {"to": "declined", "reason": "Prefers a walking group"}
    data = client.post(url, json=closing, headers=headers).get_json()
    assert data["status"] == "declined"
    assert data["closed_on"] == clock.today().isoformat()
    assert data["timeline"][-1]["reason"] == "Prefers a walking group"
    assert audit_actions().count("referral.transition") == 2


def test_admins_may_move_referrals_too(api_client, link_worker):
    _c, _h, lw_user = link_worker
    referral = make_referral(lw_user, factories.make_organisation())
    client, headers = api_client(Role.ADMIN)
    url = f"{URL}/{referral.id}/transitions"
    assert client.post(url, json={"to": "assessed"}, headers=headers).status_code == 201


@pytest.mark.parametrize(
    ("moves", "payload", "field", "message"),
    [
        ((), {"to": "completed"}, "to", "A referral that is received cannot move to completed"),
        ((), {"to": "declined"}, "reason", "Give a reason"),
        ((), {"to": "declined", "reason": "   "}, "reason", "Give a reason"),
        (
            (Status.ASSESSED,),
            {"to": "enrolled"},
            "to",
            "Enrolled is set by enrolling the person on a course, not by hand",
        ),
        (
            (Status.ASSESSED,),
            {"to": "waitlisted"},
            "to",
            "On a waiting list is set by enrolling the person on a course, not by hand",
        ),
        (
            (Status.ASSESSED, Status.ENROLLED),
            {"to": "started"},
            "to",
            "Started is set by enrolling the person on a course, not by hand",
        ),
        ((Status.ASSESSED,), {"to": "received"}, "to", None),
    ],
)
def test_moves_the_lifecycle_refuses_are_422_with_its_message(
    link_worker, moves, payload, field, message
):
    client, headers, user = link_worker
    referral = make_referral(user, factories.make_organisation(), moves=moves)
    before = (referral.status, len(referral.transitions))
    response = client.post(f"{URL}/{referral.id}/transitions", json=payload, headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert list(problem["errors"]) == [field]
    if message:
        assert problem["detail"] == message and problem["errors"][field] == [message]
    db.session.expire_all()
    assert (referral.status, len(referral.transitions)) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "to"),
        ({"to": "lost"}, "to"),
        ({"to": 3}, "to"),
        ({"to": "contacting", "on": (clock.today() + timedelta(days=1)).isoformat()}, "on"),
        ({"to": "contacting", "on": (clock.today() - timedelta(days=11)).isoformat()}, "on"),
        ({"to": "contacting", "on": "last week"}, "on"),
        ({"to": "contacting", "note": "x" * 4001}, "note"),
        ({"to": "declined", "reason": "x" * 4001}, "reason"),
        ({"to": "contacting", "by": "system"}, "by"),
        (["contacting"], "body"),
    ],
)
def test_bad_transition_bodies_are_422_at_the_field(link_worker, payload, field):
    client, headers, user = link_worker
    referral = make_referral(user, factories.make_organisation())
    response = client.post(f"{URL}/{referral.id}/transitions", json=payload, headers=headers)
    assert response.status_code == 422
    assert list(response.get_json()["errors"]) == [field]
    assert db.session.scalar(select(func.count()).select_from(ReferralTransition)) == 1


def test_referrers_may_not_move_referrals_whoever_they_belong_to(referrer, link_worker):
    """A role check, not a lookup: the same 403 for their own, another practice's and no referral,
    so the answer says nothing about what exists outside their scope."""
    client, headers, user = referrer
    _c, _h, lw_user = link_worker
    ours = make_referral(lw_user, user.organisation)
    theirs = make_referral(lw_user, factories.make_organisation())
    for referral_id in (ours.id, theirs.id, 987654):
        response = client.post(
            f"{URL}/{referral_id}/transitions", json={"to": "contacting"}, headers=headers
        )
        assert response.status_code == 403
        assert response.mimetype == "application/problem+json"
    assert client.get(f"{URL}/{theirs.id}", headers=headers).status_code == 404


def test_moving_an_unknown_referral_is_a_404(link_worker):
    client, headers, _user = link_worker
    response = client.post(f"{URL}/987654/transitions", json={"to": "contacting"}, headers=headers)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


# --- The OpenAPI document -----------------------------------------------------------------------


def test_the_referral_endpoints_are_documented(api_client):
    client, headers = api_client(Role.ADMIN)
    document = client.get("/api/v1/openapi.json", headers=headers).get_json()
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/referrals"])
    assert "get" in paths["/referrals/{referral_id}"]
    assert "post" in paths["/referrals/{referral_id}/transitions"]
    create = paths["/referrals"]["post"]
    assert {"201", "409", "422"} <= set(create["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    schemas = document["components"]["schemas"]
    assert {"ReferralInput", "Referral", "Patient", "Transition", "TransitionInput"} <= set(schemas)
    assert set(schemas["ReferralInput"]["properties"]) >= {"patient", "consent", "gp_practice_id"}


def test_control_characters_in_text_are_a_field_error(api_client):
    client, headers = api_client(Role.REFERRER)
    response = client.post("/api/v1/referrals", json={"reason": "Low\x00 mood"}, headers=headers)
    assert response.status_code == 422
    assert "Must not contain control characters" in response.get_json()["errors"]["reason"]
