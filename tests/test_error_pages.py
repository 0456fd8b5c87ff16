"""Error pages: the service's own, even when the database is locked, and never at the cost of
what a person typed."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select

from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.intake.models import ContactAttempt, Referral
from tests import factories
from tests.conftest import csrf_token, database_url, make_app, sign_in
from tests.intake_helpers import make_referral, nhs_numbers
from tests.write_lock import another_process_can_write

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hidden_fields(html: str) -> list[tuple[str, str]]:
    return _HIDDEN.findall(html)


@pytest.fixture()
def impatient_app(app: Flask, database_root) -> Iterator[Flask]:
    """The same database, served by an app that gives up on a lock after a fifth of a second."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("holds SQLite's database write lock from another connection")
    other = make_app(database_url(database_root), SQLITE_BUSY_TIMEOUT_MS=200)
    yield other
    with other.app_context():
        db.engine.dispose()


def test_a_form_that_meets_a_locked_database_comes_back_filled_in_to_send_again(
    app: Flask, impatient_app: Flask
) -> None:
    link_worker = factories.make_user(Role.LINK_WORKER)
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    referral = make_referral(link_worker, practice, nhs=next(nhs_numbers()))
    db.session.commit()
    client = impatient_app.test_client()
    assert sign_in(client, link_worker.email).status_code == 302
    url = f"/referrals/{referral.id}/contact"
    token = csrf_token(client, url)
    form = {"method": "phone", "outcome": "spoke", "note": "Call back Thursday <after 2pm>"}

    blocker = sqlite3.connect(db.engine.url.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        response = client.post(url, data={**form, "csrf_token": token})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    page = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert "The service is busy: try again" in page
    assert "Call back Thursday &lt;after 2pm&gt;</dd>" in page  # shown as typed
    assert "nhsuk-header" in page  # the service's own page, not Werkzeug's
    assert "Werkzeug" not in page
    assert response.headers["Cache-Control"] == "no-store"
    resent = dict(hidden_fields(page))
    assert resent.pop("csrf_token")  # a token for this session, so the form can go again
    assert resent == {**form, "note": "Call back Thursday &lt;after 2pm&gt;"}
    assert db.session.scalar(select(func.count()).select_from(ContactAttempt)) == 0

    again = client.post(url, data={**form, "csrf_token": dict(hidden_fields(page))["csrf_token"]})
    assert again.status_code == 302
    db.session.expire_all()
    attempt = db.session.scalar(select(ContactAttempt))
    assert attempt is not None and attempt.note == form["note"]


def test_a_page_read_while_another_process_writes_is_served(
    app: Flask, impatient_app: Flask
) -> None:
    """Reads never wait for a writer, however long the other process holds its lock."""
    referrer = factories.make_user(Role.REFERRER)
    db.session.commit()
    client = impatient_app.test_client()
    sign_in(client, referrer.email)
    blocker = sqlite3.connect(db.engine.url.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = client.get("/referrals/")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 200


def test_an_expired_form_sent_from_this_site_is_offered_back(login_as) -> None:
    gp = login_as(Role.REFERRER)
    response = gp.post(
        "/referrals/new",
        data={"csrf_token": "expired-or-forged", "reason": "Singing for breath"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Your form has expired" in page
    assert ("reason", "Singing for breath") in hidden_fields(page)


def test_a_form_posted_from_another_site_is_not_offered_back(login_as) -> None:
    gp = login_as(Role.REFERRER)
    response = gp.post(
        "/referrals/new",
        data={"reason": "Singing for breath"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Singing for breath" not in page
    assert "Send again" not in page


def test_a_wrong_method_says_which_methods_are_allowed(login_as, api_client) -> None:
    gp = login_as(Role.REFERRER)
    page = gp.delete("/referrals/new")
    assert page.status_code == 405
    assert set(page.headers["Allow"].split(", ")) >= {"GET", "POST"}
    client, headers = api_client(Role.ADMIN)
    api = client.delete("/api/v1/me", headers=headers)
    assert api.status_code == 405
    assert "GET" in api.headers["Allow"]
    assert api.mimetype == "application/problem+json"


def test_nothing_of_a_failed_referral_is_half_written(app: Flask, impatient_app: Flask) -> None:
    """A referral sent while the database is locked stores neither the person nor the referral."""
    from tests.intake_helpers import referral_form

    referrer = factories.make_user(Role.REFERRER)
    db.session.commit()
    client = impatient_app.test_client()
    sign_in(client, referrer.email)
    token = csrf_token(client, "/referrals/new")
    blocker = sqlite3.connect(db.engine.url.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = client.post("/referrals/new", data={**referral_form(), "csrf_token": token})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 503
    assert ("family_name", "Atkins") in hidden_fields(response.get_data(as_text=True))
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0


def test_slow_work_in_a_writing_request_holds_no_write_lock(app: Flask) -> None:
    """A password hash inside a sign-in must not hold every other writer up."""
    from referrals.auth.models import User
    from referrals.db import without_write_lock

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's single write lock")
    path = db.engine.url.database
    db.session.commit()
    with app.test_request_context("/sign-in", method="POST"):
        db.session.execute(select(User.id)).all()  # a writing request takes the lock first
        assert not another_process_can_write(path)
        with without_write_lock(db.session):
            db.session.execute(select(User.id)).all()
            assert another_process_can_write(path)
        db.session.execute(select(User.id)).all()
        assert not another_process_can_write(path)
        db.session.rollback()
