"""Time passes between two requests, as it does for people.

A signed-in session's last-seen time is refreshed at most once a minute. The refresh must never
make a request wait on a lock that the same request holds (SQLite's write lock), so every form
sent after the refresh interval must work exactly as one sent at once. These tests let the clock
move between reading a form and sending it, through the real session machinery and CSRF.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask
from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import Role, UserSession
from referrals.courses.models import Enrolment, EnrolmentStatus
from referrals.extensions import db
from referrals.intake.models import ContactAttempt, Referral
from referrals.notifications.services import notify
from tests.conftest import csrf_token, submit
from tests.course_helpers import assessed_referral
from tests.factories import make_course
from tests.intake_helpers import referral_form
from tests.test_authz_matrix import MATRIX, SAFE_METHODS, cases, expected
from tests.world import ROLES, build_world

# Past the session's refresh interval (a minute), well inside the idle timeout (30 minutes).
A_MINUTE_AND_MORE = timedelta(seconds=61)


@contextmanager
def clock_moved_on(by: timedelta = A_MINUTE_AND_MORE) -> Iterator[time_machine.Coordinates]:
    """Move the service's clock forward and let it keep ticking from there."""
    with time_machine.travel(datetime.now(UTC) + by, tick=True) as traveller:
        yield traveller


def last_seen(user_id: int) -> datetime:
    db.session.expire_all()
    return max(
        db.session.scalars(select(UserSession.last_seen_at).where(UserSession.user_id == user_id))
    )


def test_a_referral_sent_a_minute_after_opening_the_form_is_saved(gp):
    token = csrf_token(gp, "/referrals/new")
    with clock_moved_on():
        response = gp.post("/referrals/new", data={**referral_form(), "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 1


def test_a_contact_form_sent_after_a_minute_is_saved_and_the_session_is_refreshed(gp, link_worker):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    before = last_seen(link_worker.user.id)
    token = csrf_token(link_worker, f"/referrals/{referral.id}/contact")
    with clock_moved_on():
        response = link_worker.post(
            f"/referrals/{referral.id}/contact",
            data={"method": "phone", "outcome": "no_answer", "csrf_token": token},
        )
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(ContactAttempt)) == 1
    assert last_seen(link_worker.user.id) - before >= A_MINUTE_AND_MORE


def test_a_form_refused_for_its_input_after_a_minute_still_refreshes_the_session(link_worker):
    """Nothing of the form is saved, but the person was active: the idle clock restarts."""
    before = last_seen(link_worker.user.id)
    token = csrf_token(link_worker, "/referrals/new")
    with clock_moved_on():
        response = link_worker.post(
            "/referrals/new", data={**referral_form(nhs_number="123"), "csrf_token": token}
        )
    assert response.status_code == 200
    assert "NHS number" in response.get_data(as_text=True)
    assert last_seen(link_worker.user.id) - before >= A_MINUTE_AND_MORE


def test_opening_a_message_after_a_minute_works(link_worker):
    message = notify(user=link_worker.user, text="A place is free", link="/referrals/")
    db.session.commit()
    token = csrf_token(link_worker, "/messages/")
    with clock_moved_on():
        response = link_worker.post(f"/messages/{message.id}/open", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/referrals/")


def test_a_waiting_list_place_asked_for_after_a_minute_is_given(link_worker):
    course = make_course(capacity=1)
    enrolled = assessed_referral(link_worker.user)
    waiting = assessed_referral(link_worker.user)
    db.session.commit()
    url = f"/courses/{course.id}/enrol"
    submit(link_worker, url, {"referral_id": enrolled.id}, page=f"/courses/{course.id}")
    token = csrf_token(link_worker, f"/courses/{course.id}?referral={waiting.id}")
    with clock_moved_on():
        response = link_worker.post(url, data={"referral_id": waiting.id, "csrf_token": token})
    assert response.status_code == 302
    statuses = {
        e.referral_id: e.status
        for e in db.session.scalars(select(Enrolment).where(Enrolment.course_id == course.id))
    }
    assert statuses == {
        enrolled.id: EnrolmentStatus.ENROLLED,
        waiting.id: EnrolmentStatus.WAITLISTED,
    }


def test_a_page_refused_after_an_idle_minute_answers_403_and_is_audited(login_as):
    commissioner = login_as(Role.COMMISSIONER)
    with clock_moved_on():
        response = commissioner.get("/referrals/")
    assert response.status_code == 403
    assert "You do not have access" in response.get_data(as_text=True) or (
        "<html" in response.get_data(as_text=True)
    )
    refusals = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "access.refused")
    ).all()
    assert [(e.actor_id, e.detail["path"]) for e in refusals] == [
        (commissioner.user.id, "/referrals/")
    ]


def test_a_session_idle_past_the_timeout_is_signed_out_not_refreshed(link_worker, app):
    with clock_moved_on(app.config["SESSION_IDLE_TIMEOUT"] + timedelta(seconds=1)):
        response = link_worker.get("/referrals/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in")


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_every_form_sent_after_a_minute_is_answered_as_it_would_be_at_once(
    app: Flask, login_as: Any, role: Role
) -> None:
    """Every unsafe page route in the URL map, with an object in scope, each sent more than
    a minute after the one before: the same answer as the authorisation walk expects."""
    world = build_world()
    user = world.user(role)
    pages = login_as(user)
    token = csrf_token(pages, "/account/password")
    failures = []
    sent = 0
    with clock_moved_on() as traveller:
        for case in cases(app, world, role):
            if case.is_api or case.method in SAFE_METHODS or not case.inside:
                continue
            if case.rule.endpoint == "auth.logout":
                continue  # ends the session that the walk goes on with
            access = MATRIX[case.rule.endpoint]
            if isinstance(access.roles, frozenset) and role not in access.roles:
                continue
            traveller.shift(A_MINUTE_AND_MORE)
            response = pages.open(case.path, method=case.method, data={"csrf_token": token})
            sent += 1
            description, ok = expected(case, role)
            if not ok(response):
                failures.append(f"{case}: expected {description}, got {response.status_code}")
    assert sent > 0
    assert not failures, "\n".join(failures)
