"""Email and text messages: queued once per (kind, person, object, occasion), sent by the
scheduler or the command line through a real SMTP server (aiosmtpd) or the real GOV.UK Notify
client against a local server speaking Notify's JSON; the person's choice of contact, consent
and opt-out respected; temporary failures retried, permanent ones recorded."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import pytest
import time_machine
from sqlalchemy import select

from referrals import clock
from referrals.auth.models import OrganisationKind, Role
from referrals.clock import LONDON
from referrals.courses.models import Course, CourseSession, Enrolment
from referrals.courses.services import cancel_session, enrol
from referrals.extensions import db
from referrals.intake.services import record_conversation
from referrals.notifications.messages import deliver_due
from referrals.notifications.models import Channel, MessageStatus, OutboundMessage
from referrals.notifications.outbound import stop_token
from referrals.vocab import ContactMethod
from tests import factories
from tests.conftest import submit
from tests.course_helpers import _numbers, assessed_referral
from tests.factories import make_course, make_venue
from tests.intake_helpers import make_referral, pdf_text
from tests.outbound_servers import API_KEY, Mailbox, NotifyStub, start_mailbox

TODAY = clock.today()
TOMORROW = TODAY + timedelta(days=1)
EMAIL_TEMPLATE = "f33517ff-2a88-4f6e-b855-c550268ce08a"
SMS_TEMPLATE = "a2b6e4e8-0e3b-4c5a-9f55-7a0c8d1f3e21"
MORNING = datetime.combine(TODAY, time(11, 0), tzinfo=LONDON)  # reminders are due from 10:00
EARLY = datetime.combine(TODAY, time(8, 0), tzinfo=LONDON)


@pytest.fixture(autouse=True)
def _before_the_reminder_hour() -> Iterator[None]:
    """Each test starts at 08:00 on TODAY, before reminders are due, whatever the hour it runs:
    what a test sets up is queued then, and it moves the clock on itself."""
    with time_machine.travel(EARLY, tick=True):
        yield


@pytest.fixture()
def mailbox(app, monkeypatch) -> Iterator[Mailbox]:
    controller, box, port = start_mailbox()
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", port)
    monkeypatch.setitem(app.config, "MAIL_DEFAULT_SENDER", "arts@scheme.example.org")
    box.port = port  # type: ignore[attr-defined]
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture()
def notify(app, monkeypatch) -> Iterator[NotifyStub]:
    stub = NotifyStub().start()
    monkeypatch.setitem(app.config, "NOTIFY_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "NOTIFY_BASE_URL", stub.url)
    monkeypatch.setitem(
        app.config, "NOTIFY_EMAIL_TEMPLATE_ID", "f33517ff-2a88-4f6e-b855-c550268ce08a"
    )
    monkeypatch.setitem(
        app.config, "NOTIFY_SMS_TEMPLATE_ID", "a2b6e4e8-0e3b-4c5a-9f55-7a0c8d1f3e21"
    )
    try:
        yield stub
    finally:
        stub.stop()


def _course_tomorrow(**overrides) -> Course:
    """A weekly course whose second session is tomorrow."""
    return make_course(start=TOMORROW - timedelta(days=7), **overrides)


def _participant(course: Course, contact: ContactMethod, **patient) -> Enrolment:
    actor = factories.make_user(Role.LINK_WORKER)
    referral = assessed_referral(actor, preferred_contact=contact, **patient)
    return enrol(actor, referral, course, today=TODAY, late_start_confirmed=True)


def _deliver(today: date = TODAY) -> str:
    db.session.commit()  # the sender works in its own transactions
    return deliver_due(today)


def _messages(kind: str | None = None) -> list[OutboundMessage]:
    query = select(OutboundMessage).order_by(OutboundMessage.id)
    if kind:
        query = query.where(OutboundMessage.kind == kind)
    db.session.expire_all()
    return list(db.session.scalars(query))


def test_a_days_reminders_go_out_once_by_email_to_those_who_chose_it(app, mailbox):
    course = _course_tomorrow()
    emailed = _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    _participant(course, ContactMethod.LETTER, email="bob@example.test")
    _participant(course, ContactMethod.TEXT, phone="07700900001")  # no SMS back-end: nothing
    _participant(course, ContactMethod.EMAIL, email="cat@example.test", given_name="Cat")
    with time_machine.travel(MORNING, tick=False):
        _deliver()
        _deliver()  # a second round (another scheduler) adds nothing
    reminders = [m for m in mailbox.messages if m["Subject"].startswith("Reminder")]
    assert sorted(m["To"] for m in reminders) == ["ann@example.test", "cat@example.test"]
    ann = mailbox.to("ann@example.test")[-1]
    assert ann["Subject"] == f"Reminder: {course.title} tomorrow"
    body = ann.get_content()
    assert "tomorrow, " in body and "10:00" in body and course.venue.name in body
    assert "/messages/stop/" in body
    # Nothing identifying in any subject; the enrolment confirmations went too, once each.
    for message in mailbox.messages:
        assert "Test" not in message["Subject"] and "Person" not in message["Subject"]
    confirmations = [m["To"] for m in mailbox.messages if m["Subject"].startswith("Your place")]
    assert sorted(confirmations) == ["ann@example.test", "cat@example.test"]
    assert all(m.status is MessageStatus.SENT for m in _messages())
    assert emailed.referral.patient.email == "ann@example.test"


def test_nothing_is_queued_while_history_is_loaded(app, mailbox):
    from referrals.notifications.outbound import loading_history

    course = _course_tomorrow()
    with loading_history():  # as the demo loads its year
        _participant(course, ContactMethod.EMAIL, email="then@example.test")
    _participant(course, ContactMethod.EMAIL, email="now@example.test")
    assert [m.recipient for m in _messages()] == ["now@example.test"]


def test_reminders_wait_for_the_morning_before(app, mailbox):
    course = _course_tomorrow()
    _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    with time_machine.travel(datetime.combine(TODAY, time(6, 0), tzinfo=LONDON), tick=False):
        _deliver()
    assert _messages("session_reminder") == []


def test_nothing_is_sent_for_a_cancelled_session(app, mailbox):
    course = _course_tomorrow()
    _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    tomorrow = db.session.scalar(
        select(CourseSession).where(
            CourseSession.course_id == course.id, CourseSession.date == TOMORROW
        )
    )
    with time_machine.travel(MORNING, tick=False):
        from referrals.notifications.messages import session_reminders

        assert session_reminders(TODAY, datetime.now(LONDON)) == 1  # queued, not yet sent
        cancel_session(None, tomorrow, "The hall is flooded")
        _deliver()
        _deliver()
    reminder = _messages("session_reminder")[0]
    assert reminder.status is MessageStatus.CANCELLED and "cancelled" in reminder.error
    subjects = [m["Subject"] for m in mailbox.to("ann@example.test")]
    assert not any(s.startswith("Reminder") for s in subjects)
    assert any("is cancelled" in s for s in subjects)


def test_sms_only_to_people_who_chose_text_and_did_not_stop(app, notify, client):
    course = _course_tomorrow()
    texted = _participant(course, ContactMethod.TEXT, phone="07700900001")
    _participant(course, ContactMethod.LETTER, phone="07700900002")
    stopped = _participant(course, ContactMethod.TEXT, phone="07700900003")
    db.session.commit()
    # The third person follows the link from an earlier email and asks to stop.
    url = f"/messages/stop/{stop_token(stopped.referral.patient_id)}"
    assert "Stop messages" in client.get(url).get_data(as_text=True)
    assert submit(client, url, {}).status_code == 200
    with time_machine.travel(MORNING, tick=False):
        _deliver()
    numbers = sorted(body["phone_number"] for body in notify.sms())
    assert set(numbers) == {"07700900001"}
    reminder = next(b for b in notify.sms() if b["personalisation"]["body"].startswith("Reminder"))
    text = reminder["personalisation"]["body"]
    assert course.title in text and "10:00" in text
    assert "Low mood" not in text and texted.referral.reason not in text  # no clinical detail
    assert reminder["reference"].startswith("message-")
    queued_for_stopped = [m for m in _messages() if m.patient_id == stopped.referral.patient_id]
    assert all(m.status is MessageStatus.CANCELLED for m in queued_for_stopped)


def test_a_temporary_failure_is_retried_and_a_permanent_one_recorded(app, mailbox):
    course = _course_tomorrow()
    _participant(course, ContactMethod.EMAIL, email="later@example.test")
    _participant(course, ContactMethod.EMAIL, email="nobody@example.test")
    mailbox.refusals = ["451 4.3.0 Try again later", "550 5.1.1 No such mailbox"]
    db.session.commit()
    _deliver()
    later, nobody = _messages("enrolment_confirmed")
    assert later.status is MessageStatus.QUEUED and later.attempts == 1
    assert "451" in later.error and later.next_attempt_at > later.claimed_at
    assert nobody.status is MessageStatus.FAILED and "550" in nobody.error
    _deliver()  # not due yet: nothing more is tried
    assert _messages("enrolment_confirmed")[0].attempts == 1
    with time_machine.travel(later.next_attempt_at + timedelta(seconds=1), tick=False):
        _deliver()
    later, nobody = _messages("enrolment_confirmed")
    assert later.status is MessageStatus.SENT and later.attempts == 2
    assert [m["To"] for m in mailbox.messages] == ["later@example.test"]
    assert nobody.status is MessageStatus.FAILED


def test_notify_errors_are_retried_or_recorded_as_notify_answers(app, notify):
    course = _course_tomorrow()
    _participant(course, ContactMethod.TEXT, phone="07700900001")
    _participant(course, ContactMethod.TEXT, phone="0123")
    notify.failures = [
        (500, "Exception", "Internal server error"),
        (400, "ValidationError", "phone_number Not a UK mobile number"),
    ]
    _deliver()
    first, second = _messages("enrolment_confirmed")
    assert first.status is MessageStatus.QUEUED and "500" in first.error
    assert second.status is MessageStatus.FAILED and "Not a UK mobile number" in second.error
    with time_machine.travel(first.next_attempt_at + timedelta(seconds=1), tick=False):
        _deliver()
    assert _messages("enrolment_confirmed")[0].status is MessageStatus.SENT
    assert [b["phone_number"] for b in notify.sms()] == ["07700900001"]


def test_the_message_back_reaches_the_practice_mailbox_with_its_letter(app, mailbox):
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    practice.shared_mailbox = "practice.shared@nhs.example.test"
    link_worker = factories.make_user(Role.LINK_WORKER)
    referral = make_referral(link_worker, practice, nhs=next(_numbers), given_name="Margaret")
    record_conversation(link_worker, referral, held_on=TODAY, what_matters="Singing again")
    _deliver()
    (sent,) = mailbox.to("practice.shared@nhs.example.test")
    assert sent["Subject"] == f"Arts on prescription: message back for referral R{referral.id}"
    assert "Margaret" not in sent.get_body(("plain",)).get_content()
    (letter,) = list(sent.iter_attachments())
    assert letter.get_content_type() == "application/pdf"
    text = pdf_text(letter.get_content())
    assert "Margaret" in text and "871731000000106" in text


def test_with_no_back_end_nothing_is_queued(app):
    course = _course_tomorrow()
    _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    with time_machine.travel(MORNING, tick=False):
        assert deliver_due(TODAY).startswith("0 queued; 0 sent")
    assert _messages() == []


def test_admins_see_messages_and_their_status(app, mailbox, login_as):
    course = _course_tomorrow()
    _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    _deliver()
    admin = login_as(Role.ADMIN)
    page = admin.get("/admin/messages").get_data(as_text=True)
    assert "ann@example.test" in page and "Sent" in page
    preview = admin.get("/admin/messages/preview/session_reminder").get_data(as_text=True)
    assert "Reminder: Singing for Better Breathing tomorrow" in preview
    assert "Text message" in preview


@pytest.mark.slow
def test_four_processes_send_one_reminder_per_person_per_session(app, mailbox):
    course = _course_tomorrow()
    people = [f"person{n}@example.test" for n in range(5)]
    for address in people:
        _participant(course, ContactMethod.EMAIL, email=address)
    _deliver()  # the enrolment confirmations, before the race
    before = len(mailbox.messages)
    db.session.commit()
    env = dict(
        os.environ,
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY="test-secret-key-not-for-production",
        FLASK_APP="referrals",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(mailbox.port),  # type: ignore[attr-defined]
        REFERRALS_SESSION_REMINDER_HOUR="0",
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "notifications", "send"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        out, _ = process.communicate(timeout=240)
        assert process.returncode == 0, out
    reminders = [m["To"] for m in mailbox.messages[before:]]
    assert sorted(reminders) == sorted(people)  # one each, not four
    assert {m.status for m in _messages("session_reminder")} == {MessageStatus.SENT}
    assert all(m.channel is Channel.EMAIL for m in _messages())


def test_staff_choose_which_emails_they_get(app, mailbox, login_as):
    from referrals.audit import AuditEvent
    from referrals.auth.models import User
    from referrals.notifications.messages import job_failed
    from tests.conftest import csrf_token

    admin = factories.make_user(Role.ADMIN, email="jo@scheme.example.org")
    other = factories.make_user(Role.ADMIN, email="sam@scheme.example.org")
    client = login_as(admin)
    home = client.get("/").get_data(as_text=True)
    assert "/messages/emails" in home  # in the account menu
    page = client.get("/messages/emails").get_data(as_text=True)
    assert "A scheduled job failed" in page and "A referral is assigned to me" in page
    assert "A register I lead" not in page  # an artist's email, not an admin's

    # Without the form's token nothing changes.
    refused = client.post("/messages/emails", data={"wanted": ["referral_assigned"]})
    assert refused.status_code == 400
    token = csrf_token(client, "/messages/emails")
    saved = client.post(
        "/messages/emails", data={"csrf_token": token, "wanted": ["referral_assigned"]}
    )
    assert saved.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, admin.id).email_opt_outs == ["job_failed"]
    event = db.session.scalar(
        select(AuditEvent).where(AuditEvent.action == "account.email_choices")
    )
    assert event is not None and event.actor_id == admin.id
    assert event.detail["opted_out"] == ["job_failed"]
    page = client.get("/messages/emails").get_data(as_text=True)
    assert re.search(r'value="referral_assigned"[^>]*checked', page)
    assert re.search(r'value="job_failed"[^>]*>', page)
    assert not re.search(r'value="job_failed"[^>]*checked', page)

    queued = job_failed(
        db.session.scalars(select(User).where(User.id.in_([admin.id, other.id]))).all(),
        run_id=1,
        job="Monthly KPI returns",
        period="2026-03",
    )
    assert queued == 1
    assert [m.recipient for m in _messages("job_failed")] == ["sam@scheme.example.org"]

    # Ticking it again turns it back on.
    client.post(
        "/messages/emails",
        data={"csrf_token": token, "wanted": ["referral_assigned", "job_failed"]},
    )
    db.session.expire_all()
    assert db.session.get(User, admin.id).email_opt_outs == []


def test_a_role_with_no_emails_is_told_so(app, login_as):
    page = login_as(Role.COMMISSIONER).get("/messages/emails").get_data(as_text=True)
    assert "The service sends no emails to your role" in page


def test_a_place_offered_is_answered_from_the_link_in_its_message(app, mailbox):
    from referrals.courses.models import EnrolmentStatus
    from referrals.courses.services import withdraw
    from referrals.intake.lifecycle import Status
    from tests.conftest import csrf_token

    course = _course_tomorrow(capacity=1)
    holder = _participant(course, ContactMethod.EMAIL, email="holder@example.test")
    ben = _participant(course, ContactMethod.EMAIL, email="ben@example.test")
    cat = _participant(course, ContactMethod.EMAIL, email="cat@example.test")
    withdraw(holder.referral.assigned_to or holder.created_by, holder, "Moved", today=TODAY)
    assert ben.status is EnrolmentStatus.OFFERED
    db.session.commit()
    (offer,) = _messages("waiting_list_place")
    assert offer.recipient == "ben@example.test"
    assert "until the end of" in offer.body
    link = re.search(r"http://localhost:5000(/messages/offer/\S+)", offer.body)
    assert link is not None
    url = link.group(1)

    client = app.test_client()
    page = client.get(url).get_data(as_text=True)
    assert "Accept the place" in page and "I do not want it" in page
    # Without the form's token nothing changes.
    assert client.post(url, data={"answer": "decline"}).status_code == 400
    answered = client.post(url, data={"csrf_token": csrf_token(client, url), "answer": "decline"})
    assert "The place will go to the next person waiting" in answered.get_data(as_text=True)
    db.session.expire_all()
    assert ben.status is EnrolmentStatus.WITHDRAWN and ben.referral.status is Status.ASSESSED
    assert cat.status is EnrolmentStatus.OFFERED

    # Ben's offer, answered before it went, is not sent; Cat's is.
    _deliver()
    first, second = _messages("waiting_list_place")
    assert (first.recipient, first.status) == ("ben@example.test", MessageStatus.CANCELLED)
    assert first.error == "the place is no longer on offer"
    assert (second.recipient, second.status) == ("cat@example.test", MessageStatus.SENT)
    delivered = [m for m in mailbox.messages if m["To"] == "cat@example.test"]
    assert any("A place has come up" in m["Subject"] for m in delivered)

    url = re.search(r"http://localhost:5000(/messages/offer/\S+)", second.body).group(1)
    token = csrf_token(client, url)
    answered = client.post(url, data={"csrf_token": token, "answer": "accept"})
    assert "The place is yours" in answered.get_data(as_text=True)
    db.session.expire_all()
    assert cat.status is EnrolmentStatus.ENROLLED and cat.referral.status is Status.ENROLLED
    assert [m.recipient for m in _messages("enrolment_confirmed")][-1] == "cat@example.test"
    # The link now says the offer is over, and answers nothing more.
    again = client.post(url, data={"csrf_token": token, "answer": "decline"})
    assert "This place is no longer on offer" in again.get_data(as_text=True)
    db.session.expire_all()
    assert cat.status is EnrolmentStatus.ENROLLED
    assert client.get("/messages/offer/not-a-token").status_code == 404


# GOV.UK Notify's callbacks: a STOP texted back, and delivery receipts -------------------

CALLBACK_TOKEN = "callback-token-set-on-notify"
RECEIVED = "/messages/notify/received-text"
RECEIPT = "/messages/notify/delivery-receipt"


def _bearer(token: str = CALLBACK_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _texted(source_number: str, message: str) -> dict[str, str]:
    """The JSON Notify posts for a text a person sent to the service's number."""
    return {
        "id": "6f6d4d5a-5b3e-4a4f-8d1b-0a1a7d5d2c11",
        "source_number": source_number,
        "destination_number": "07700900999",
        "message": message,
        "date_received": "2026-12-07T10:15:30.000000Z",
    }


def _receipt(message: OutboundMessage, status: str) -> dict[str, object]:
    """The JSON Notify posts when a message it was given reaches its end."""
    return {
        "id": message.provider_reference,
        "reference": f"message-{message.id}",
        "to": message.recipient,
        "status": status,
        "created_at": "2026-12-07T10:00:00.000000Z",
        "completed_at": "2026-12-07T10:00:05.000000Z",
        "sent_at": "2026-12-07T10:00:01.000000Z",
        "notification_type": message.channel.value,
        "template_id": SMS_TEMPLATE,
        "template_version": 1,
    }


def test_stop_texted_back_stops_messages_as_the_email_link_does(app, notify, client, monkeypatch):
    from referrals.audit import AuditEvent

    monkeypatch.setitem(app.config, "NOTIFY_CALLBACK_TOKEN", CALLBACK_TOKEN)
    course = _course_tomorrow()
    stops = _participant(course, ContactMethod.TEXT, phone="07700900001")
    sibling = _participant(course, ContactMethod.TEXT, phone="07700900001")  # the same phone
    chats = _participant(course, ContactMethod.TEXT, phone="07700900002")
    _deliver()
    (confirmation, *_) = notify.sms()
    assert confirmation["personalisation"]["body"].endswith("Reply STOP to stop these texts.")

    # Notify gives the sender's number internationally; no CSRF token: a machine posts this.
    answer = client.post(RECEIVED, json=_texted("447700900001", " stop "), headers=_bearer())
    assert answer.status_code == 204
    chatted = _texted("447700900002", "Stop by at 10?")
    assert client.post(RECEIVED, json=chatted, headers=_bearer()).status_code == 204
    with time_machine.travel(MORNING, tick=False):
        _deliver()
    reminded = [b["phone_number"] for b in notify.sms() if "Reminder" in str(b["personalisation"])]
    assert reminded == ["07700900002"]
    db.session.expire_all()
    assert stops.referral.patient.messages_stopped_at is not None
    assert sibling.referral.patient.messages_stopped_at is not None
    assert chats.referral.patient.messages_stopped_at is None
    audited = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.messages_stopped")
    ).all()
    assert sorted(int(e.object_id or 0) for e in audited) == sorted(
        [stops.referral.patient_id, sibling.referral.patient_id]
    )
    assert {e.detail["asked_by"] for e in audited} == {"text STOP"}
    # Notify repeats a callback it is unsure of: the second changes nothing.
    again = client.post(RECEIVED, json=_texted("447700900001", "STOP"), headers=_bearer())
    assert again.status_code == 204
    stopped_events = select(AuditEvent).where(AuditEvent.action == "patient.messages_stopped")
    assert len(db.session.scalars(stopped_events).all()) == 2


def test_what_counts_as_stop_and_whose_number_it_is():
    from referrals.notifications.callbacks import is_stop_request, national_number

    for text in ("STOP", "stop", " Stop. ", "STOP ALL", "stop  all", "StopAll!"):
        assert is_stop_request(text), text
    for text in ("", "Stop by at 10?", "please stop", "STOPPED", "Don't stop", "UNSUBSCRIBE"):
        assert not is_stop_request(text), text
    assert national_number("447700900001") == "07700900001"
    assert national_number("+44 7700 900001") == "07700900001"
    assert national_number("07700900001") == "07700900001"
    assert national_number("12025550123") is None
    assert national_number("GOVUK") is None


def test_notifys_callbacks_need_its_bearer_token(app, client, monkeypatch):
    body = _texted("447700900001", "STOP")
    # Not set up: the URLs are not there.
    assert client.post(RECEIVED, json=body, headers=_bearer()).status_code == 404
    assert client.post(RECEIPT, json={}, headers=_bearer()).status_code == 404
    monkeypatch.setitem(app.config, "NOTIFY_CALLBACK_TOKEN", CALLBACK_TOKEN)
    for headers in ({}, _bearer("wrong-token"), {"Authorization": CALLBACK_TOKEN}):
        refused = client.post(RECEIVED, json=body, headers=headers)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert client.post(RECEIVED, data="STOP", headers=_bearer()).status_code == 400
    number = {**body, "source_number": 447700900001}
    not_text = client.post(RECEIVED, json=number, headers=_bearer())
    assert not_text.status_code == 400 and "source_number" in not_text.get_json()["error"]
    assert client.post(RECEIVED, json=body, headers=_bearer()).status_code == 204
    # Only these machine URLs skip the form token: a page posted without one is still refused.
    assert client.post("/messages/stop/not-a-token").status_code == 400


def test_notifys_callbacks_are_rate_limited(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFY_CALLBACK_TOKEN", CALLBACK_TOKEN)
    monkeypatch.setitem(app.config, "RATELIMIT_NOTIFY_CALLBACKS", "3 per minute")
    answers = [
        client.post(RECEIPT, json={"id": "x"}, headers=_bearer("guess")).status_code
        for _ in range(4)
    ]
    assert answers == [401, 401, 401, 429]
    # The pages keep their own limit.
    assert client.get("/privacy").status_code == 200


def test_delivery_receipts_record_whether_a_message_arrived(
    app, notify, client, login_as, monkeypatch
):
    monkeypatch.setitem(app.config, "NOTIFY_CALLBACK_TOKEN", CALLBACK_TOKEN)
    course = _course_tomorrow()
    for number in ("07700900001", "07700900002", "07700900003"):
        _participant(course, ContactMethod.TEXT, phone=number)
    _deliver()
    arrived, refused, other = _messages("enrolment_confirmed")
    assert all(m.status is MessageStatus.SENT and m.provider_reference for m in _messages())
    # The ids are those Notify's client was given back when it sent each message.
    for message, status in ((arrived, "delivered"), (refused, "permanent-failure")):
        answer = client.post(RECEIPT, json=_receipt(message, status), headers=_bearer())
        assert answer.status_code == 204
    # A receipt naming another message's id, or a status not final, changes nothing.
    forged = {**_receipt(other, "permanent-failure"), "id": arrived.provider_reference}
    assert client.post(RECEIPT, json=forged, headers=_bearer()).status_code == 204
    pending = _receipt(other, "sending")
    assert client.post(RECEIPT, json=pending, headers=_bearer()).status_code == 204
    arrived, refused, other = _messages("enrolment_confirmed")
    assert arrived.status is MessageStatus.DELIVERED and arrived.error == ""
    assert refused.status is MessageStatus.FAILED and "does not exist" in refused.error
    assert other.status is MessageStatus.SENT
    page = login_as(Role.ADMIN).get("/admin/messages?status=delivered").get_data(as_text=True)
    assert "07700900001" in page and "07700900002" not in page


# A session cancelled or moved -----------------------------------------------------------


def _session_on(course: Course, day: date) -> CourseSession:
    return db.session.scalars(
        select(CourseSession).where(CourseSession.course_id == course.id, CourseSession.date == day)
    ).one()


def test_a_moved_session_is_reminded_once_for_its_new_day(app, mailbox):
    from referrals.courses.services import move_session
    from referrals.notifications.messages import session_reminders

    course = _course_tomorrow()
    _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    session = _session_on(course, TOMORROW)
    later = TOMORROW + timedelta(days=1)
    with time_machine.travel(MORNING, tick=False):
        assert session_reminders(TODAY, datetime.now(LONDON)) == 1  # queued, not yet sent
        move_session(None, session, later, time(14, 30), today=TODAY)
        _deliver()
        _deliver()
    old_reminder = _messages("session_reminder")[0]
    assert old_reminder.status is MessageStatus.CANCELLED
    assert old_reminder.error == "the session moved"
    (moved,) = [m for m in mailbox.messages if "has moved" in m["Subject"]]
    assert "14:30" in moved.get_content() and course.venue.name in moved.get_content()
    # The day before its new day, it is reminded once, however often the sender runs.
    with time_machine.travel(MORNING + timedelta(days=1), tick=False):
        _deliver(TOMORROW)
        _deliver(TOMORROW)
    reminders = [m for m in mailbox.messages if m["Subject"].startswith("Reminder")]
    assert len(reminders) == 1 and "14:30" in reminders[0].get_content()


def test_a_session_moved_on_its_page_tells_everyone_at_the_new_venue(app, mailbox, login_as):
    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    mover = factories.make_user(Role.ARTIST, organisation=provider)
    other = factories.make_user(Role.ARTIST, organisation=provider, email="lead2@example.test")
    course = _course_tomorrow(provider=provider, lead_artists=[mover, other])
    _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    _participant(course, ContactMethod.TEXT, phone="07700900001")  # no SMS back-end
    library = make_venue(name="Central Library", postcode="GL1 1XX")
    session = _session_on(course, TOMORROW)
    page = login_as(mover)
    url = f"/sessions/{session.id}/move"
    form = page.get(url).get_data(as_text=True)
    assert "Central Library" in form and TOMORROW.strftime("%d/%m/%Y") in form
    unchanged = {"new_date": TOMORROW.strftime("%d/%m/%Y"), "new_time": "10:00"}
    same = submit(page, url, {**unchanged, "venue": str(course.venue_id)})
    assert "Give a new date, start time or venue" in same.get_data(as_text=True)
    bad = submit(page, url, {**unchanged, "new_time": "25:00", "venue": str(library.id)})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 200 and "24-hour format" in text and "25:00" in text
    moved = submit(page, url, {**unchanged, "venue": str(library.id)})
    assert moved.status_code == 302
    db.session.expire_all()
    assert session.venue.name == "Central Library" and session.moved_from is None
    assert "Central Library" in page.get(f"/courses/{course.id}").get_data(as_text=True)
    _deliver()
    (told,) = [m for m in mailbox.to("ann@example.test") if "has moved" in m["Subject"]]
    assert "Central Library" in told.get_content()
    (lead,) = mailbox.to("lead2@example.test")
    assert "Central Library" in lead.get_content() and lead["Subject"].endswith("moved")
    assert mailbox.to(mover.email) == []  # who moved it knows
    # The reminder the day before names the new venue.
    with time_machine.travel(MORNING, tick=False):
        _deliver()
    (reminder,) = [m for m in mailbox.to("ann@example.test") if "Reminder" in m["Subject"]]
    assert "Central Library" in reminder.get_content()


def test_a_cancelled_session_gets_no_reminder_nor_register_nudge(app, mailbox, login_as):
    from referrals.courses.reminders import sessions_missing_registers
    from referrals.notifications.messages import registers_overdue

    provider = factories.make_organisation(OrganisationKind.PROVIDER)
    artist = factories.make_user(Role.ARTIST, organisation=provider, email="lead@example.test")
    course = make_course(provider, start=TODAY - timedelta(days=9), lead_artists=[artist])
    _participant(course, ContactMethod.EMAIL, email="ann@example.test")
    two_days_ago = _session_on(course, TODAY - timedelta(days=2))
    admin = login_as(Role.ADMIN)
    url = f"/sessions/{two_days_ago.id}/cancel"
    missing = submit(admin, url, {"reason": "  "})
    assert "Give a reason for cancelling" in missing.get_data(as_text=True)
    assert submit(admin, url, {"reason": "Hall flooded"}).status_code == 302
    db.session.expire_all()
    assert registers_overdue(TODAY) == 0
    assert sessions_missing_registers(TODAY) == []
    _deliver()
    (cancelled,) = [m for m in mailbox.to("ann@example.test") if "cancelled" in m["Subject"]]
    assert "Hall flooded" not in cancelled.get_content()  # the reason is for staff
    (lead,) = mailbox.to("lead@example.test")
    assert "Hall flooded" in lead.get_content()
    again = submit(admin, url, {"reason": "Twice"})
    assert "already cancelled" in again.get_data(as_text=True)


def test_a_place_offered_before_email_was_set_up_still_reaches_the_person(app, monkeypatch):
    from referrals.courses.models import EnrolmentStatus
    from referrals.courses.services import withdraw

    course = _course_tomorrow(capacity=1)
    holder = _participant(course, ContactMethod.EMAIL, email="holder@example.test")
    ben = _participant(course, ContactMethod.EMAIL, email="ben@example.test")
    withdraw(holder.referral.assigned_to or holder.created_by, holder, "Moved", today=TODAY)
    assert ben.status is EnrolmentStatus.OFFERED and _messages() == []  # no back-end yet
    controller, mailbox, port = start_mailbox()
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", port)
    try:
        _deliver()
        _deliver()
    finally:
        controller.stop()
    (offer,) = mailbox.to("ben@example.test")
    assert "A place has come up" in offer["Subject"] and "/messages/offer/" in offer.get_content()


# The demo scheme, with email set up -----------------------------------------------------

DEMO_DAY = date(2026, 3, 16)  # a Monday: the breathing choir meets on Tuesdays


def _offer_emails(address: str | None, mailbox: Mailbox) -> list:
    return [m for m in mailbox.to(address or "") if "A place has come up" in m["Subject"]]


@pytest.mark.slow
def test_the_demo_sends_a_days_reminders_once_and_passes_an_unanswered_offer_on(app, mailbox):
    from referrals.courses.models import EnrolmentStatus, SessionStatus
    from referrals.intake.lifecycle import Status
    from referrals.scheduler.jobs import PLACE_OFFERS, execute
    from referrals.seeding.demo import seed_demo

    seed_demo(today=DEMO_DAY)  # with email set up: its year of history is not news
    db.session.commit()
    assert _messages() == []
    (offered,) = db.session.scalars(
        select(Enrolment).where(Enrolment.status == EnrolmentStatus.OFFERED)
    ).all()
    next_in_line = db.session.scalars(
        select(Enrolment)
        .where(
            Enrolment.course_id == offered.course_id,
            Enrolment.status == EnrolmentStatus.WAITLISTED,
        )
        .order_by(Enrolment.waitlisted_at, Enrolment.id)
    ).first()
    assert next_in_line is not None
    meeting_tomorrow = select(CourseSession.course_id).where(
        CourseSession.date == DEMO_DAY + timedelta(days=1),
        CourseSession.status == SessionStatus.PLANNED,
    )
    on_them = db.session.scalars(
        select(Enrolment).where(
            Enrolment.status == EnrolmentStatus.ENROLLED,
            Enrolment.course_id.in_(meeting_tomorrow),
        )
    ).all()
    assert on_them

    # The load day's morning: tomorrow's reminders and the place on offer go out, once.
    with time_machine.travel(datetime.combine(DEMO_DAY, time(11), tzinfo=LONDON), tick=False):
        _deliver(DEMO_DAY)
        delivered = len(mailbox.messages)
        _deliver(DEMO_DAY)
    assert len(mailbox.messages) == delivered
    reminders = sorted(m["To"] for m in mailbox.messages if m["Subject"].startswith("Reminder"))
    assert reminders == sorted(e.referral.patient.email for e in on_them)
    (offer,) = _offer_emails(offered.referral.patient.email, mailbox)
    reply_by = offered.offer_expires_on
    assert reply_by is not None and reply_by > DEMO_DAY
    assert offered.course.title in offer.get_content() and "/messages/offer/" in offer.get_content()
    assert delivered == len(reminders) + 1
    assert {m.kind for m in _messages()} == {"session_reminder", "waiting_list_place"}
    assert {m.status for m in _messages()} == {MessageStatus.SENT}

    # Not accepted by its date: after midnight the place passes to the next person, who is
    # told by the next send.
    day_after = reply_by + timedelta(days=1)
    db.session.commit()  # end this test's read, which holds SQLite's lock
    with time_machine.travel(datetime.combine(day_after, time(0, 20), tzinfo=LONDON), tick=False):
        assert execute(app, PLACE_OFFERS, today=day_after).detail == "1 place passed on"
    db.session.expire_all()
    assert offered.status is EnrolmentStatus.WITHDRAWN
    assert offered.referral.status is Status.ASSESSED
    assert next_in_line.status is EnrolmentStatus.OFFERED
    with time_machine.travel(datetime.combine(day_after, time(10, 5), tzinfo=LONDON), tick=False):
        _deliver(day_after)
    (passed_on,) = _offer_emails(next_in_line.referral.patient.email, mailbox)
    assert "/messages/offer/" in passed_on.get_content()
    assert len(_offer_emails(offered.referral.patient.email, mailbox)) == 1
