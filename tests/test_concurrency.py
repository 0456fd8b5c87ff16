"""Many people at once: every submission lands or fails cleanly, and nothing is doubled."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from referrals.auth.models import OrganisationKind, Role
from referrals.courses.models import Enrolment, EnrolmentStatus
from referrals.extensions import db
from referrals.intake.models import Referral
from tests import factories
from tests.conftest import csrf_token, sign_in
from tests.course_helpers import assessed_referral
from tests.factories import make_course
from tests.intake_helpers import nhs_numbers, referral_form


def all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on separate threads released together; return results or exceptions."""
    # End this test's own transaction first: outside a request it holds SQLite's write lock.
    db.session.commit()
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def signed_in_clients(app, count: int, role: Role, **user_kwargs: Any) -> list[Any]:
    clients = []
    for n in range(count):
        user = factories.make_user(role, **user_kwargs)
        db.session.commit()
        client = app.test_client()
        # Each from a machine of their own: one address may sign in only so often a minute.
        client.environ_base["REMOTE_ADDR"] = f"10.0.{n // 250}.{n % 250 + 1}"
        assert sign_in(client, user.email).status_code == 302
        clients.append(client)
    return clients


@pytest.mark.slow
def test_fifty_simultaneous_referrals_all_land_or_fail_cleanly(app):
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    clients = signed_in_clients(app, 50, Role.REFERRER, organisation=practice)
    numbers = nhs_numbers()
    forms = []
    for client in clients:
        form = referral_form(nhs_number=next(numbers))
        form["csrf_token"] = csrf_token(client, "/referrals/new")
        forms.append(form)
    db.session.commit()

    responses = all_at_once(
        [
            (lambda c=client, f=form: c.post("/referrals/new", data=f))
            for client, form in zip(clients, forms, strict=True)
        ]
    )

    landed = 0
    for response, form in zip(responses, forms, strict=True):
        assert not isinstance(response, Exception), response
        assert response.status_code in (302, 200), response.status_code
        if response.status_code == 302:
            landed += 1
        else:  # a clean refusal keeps the form
            assert f'value="{form["nhs_number"]}"' in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Referral)) == landed
    assert landed == 50  # on a healthy database every one of them lands


def test_a_double_submitted_form_creates_one_referral(app):
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    [client] = signed_in_clients(app, 1, Role.REFERRER, organisation=practice)
    form = referral_form()
    form["csrf_token"] = csrf_token(client, "/referrals/new")
    db.session.commit()
    responses = all_at_once([lambda: client.post("/referrals/new", data=form)] * 2)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 302]
    refused = next(r for r in responses if r.status_code == 200)
    assert "already has an open referral" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 1


def test_a_retried_api_call_creates_one_referral(app, api_client):
    client, headers = api_client(Role.LINK_WORKER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    db.session.commit()
    body = {
        "patient": {
            "nhs_number": "9434765919",
            "given_name": "Margaret",
            "family_name": "Atkins",
            "date_of_birth": "1948-03-15",
            "sex": "female",
            "ethnicity": "white",
            "postcode": "GL1 2AB",
            "phone": "01632 960001",
        },
        "referrer_type": "link_worker",
        "pathway": "copd_asthma",
        "reason": "Lonely",
        "consent": True,
        "gp_practice_id": practice.id,
    }
    retry = {**headers, "Idempotency-Key": "gp-system-7f3a"}
    responses = all_at_once(
        [lambda: client.post("/api/v1/referrals", json=body, headers=retry)] * 3
    )
    assert all(not isinstance(r, Exception) for r in responses), responses
    assert {r.status_code for r in responses} == {201}
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 1


def test_two_link_workers_enrolling_the_last_place_give_one_place_and_one_wait(app):
    course = make_course(capacity=1)
    worker = factories.make_user(Role.LINK_WORKER)
    first, second = assessed_referral(worker), assessed_referral(worker)
    db.session.commit()
    clients = signed_in_clients(app, 2, Role.LINK_WORKER)
    posts = []
    for client, referral in zip(clients, (first, second), strict=True):
        data = {
            "referral_id": referral.id,
            "csrf_token": csrf_token(client, f"/courses/{course.id}?referral={referral.id}"),
        }
        url = f"/courses/{course.id}/enrol"  # read here: worker threads have no app context
        posts.append(lambda c=client, d=data, u=url: c.post(u, data=d))
    db.session.commit()
    responses = all_at_once(posts)
    assert [getattr(r, "status_code", r) for r in responses] == [302, 302]
    statuses = sorted(e.status.value for e in db.session.scalars(select(Enrolment)))
    assert statuses == sorted([EnrolmentStatus.ENROLLED.value, EnrolmentStatus.WAITLISTED.value])
