"""In-app messages: to a person or an organisation, unread counts, read state per person."""

from __future__ import annotations

from sqlalchemy import select

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.notifications.models import Notification
from referrals.notifications.services import notify, unread_count
from tests import factories
from tests.conftest import csrf_token, submit


def test_organisation_messages_reach_everyone_in_it_with_their_own_read_state(login_as, app):
    practice = factories.make_organisation("gp_practice")
    gp1 = factories.make_user(Role.REFERRER, organisation=practice)
    gp2 = factories.make_user(Role.REFERRER, organisation=practice)
    outsider = factories.make_user(Role.REFERRER)
    message = notify(
        text="Mrs A has started Singing for Better Breathing",
        organisation=practice,
        link="/messages/",
    )
    db.session.commit()

    client1, client2 = login_as(gp1), login_as(gp2)
    assert unread_count(gp1) == unread_count(gp2) == 1
    assert unread_count(outsider) == 0
    page = client1.get("/messages/").get_data(as_text=True)
    assert "Mrs A has started" in page
    assert '1<span class="nhsuk-u-visually-hidden"> unread</span>' in page

    response = submit(client1, f"/messages/{message.id}/open", page="/messages/")
    assert response.status_code == 302 and response.headers["Location"] == "/messages/"
    assert unread_count(gp1) == 0
    assert unread_count(gp2) == 1
    assert "Mrs A has started" in client2.get("/").get_data(as_text=True)
    assert "Mrs A has started" not in login_as(outsider).get("/").get_data(as_text=True)


def test_someone_elses_message_is_not_found(login_as, app):
    owner = factories.make_user(Role.ARTIST)
    message = notify(text="Register reminder", user=owner)
    db.session.commit()
    intruder = login_as(Role.ARTIST)
    token = csrf_token(intruder, "/messages/")
    assert (
        intruder.post(f"/messages/{message.id}/open", data={"csrf_token": token}).status_code == 404
    )
    assert "Register reminder" not in intruder.get("/messages/").get_data(as_text=True)


def test_mark_all_read(login_as, app):
    client = login_as(Role.LINK_WORKER)
    for n in range(3):
        notify(text=f"Waiting list offer {n}", user=client.user)
    db.session.commit()
    response = submit(client, "/messages/read-all", page="/messages/", follow_redirects=True)
    assert "Marked 3 messages as read" in response.get_data(as_text=True)
    assert unread_count(client.user) == 0


def test_message_links_never_leave_the_site(login_as, app):
    client = login_as(Role.REFERRER)
    message = notify(text="Odd link", user=client.user, link="https://evil.example/")
    db.session.commit()
    response = submit(client, f"/messages/{message.id}/open", page="/messages/")
    assert response.headers["Location"] == "/messages/"


def test_the_gp_home_counts_every_referral_and_its_messages_open_the_referral(login_as, app):
    from referrals.intake.lifecycle import Status
    from referrals.intake.services import transition
    from tests.intake_helpers import make_referral, nhs_numbers

    practice = factories.make_organisation("gp_practice")
    gp = factories.make_user(Role.REFERRER, organisation=practice)
    numbers = nhs_numbers()
    referrals = [make_referral(gp, practice, nhs=next(numbers)) for _ in range(7)]
    elsewhere = factories.make_organisation("gp_practice")
    make_referral(
        factories.make_user(Role.REFERRER, organisation=elsewhere), elsewhere, nhs=next(numbers)
    )  # another practice's: neither counted nor listed
    for referral in referrals[:2]:
        transition(gp, referral, Status.DECLINED, reason="Not for now")
    db.session.commit()

    client = login_as(gp)
    home = client.get("/").get_data(as_text=True)
    assert "All 7 open and closed referrals from your practice" in home
    declined = referrals[1]
    message = next(
        n for n in db.session.scalars(select(Notification)) if f"R{declined.id} " in n.text
    )
    assert f'action="/messages/{message.id}/open"' in home
    response = submit(client, f"/messages/{message.id}/open", page="/")
    assert response.headers["Location"] == f"/referrals/{declined.id}"
