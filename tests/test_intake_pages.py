"""Referral pages: the GP's form, duplicates, scope, triage, timelines, letters, lists."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import OrganisationKind, Role
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.intake.models import ContactAttempt, Patient, Referral, ReferralTransition
from referrals.notifications.models import Notification
from tests import factories
from tests.conftest import submit
from tests.intake_helpers import make_referral, nhs_numbers, pdf_text, referral_form
from tests.pages import count
from tests.query_counts import queries_for


def test_gp_refers_a_patient_and_sees_it_in_the_practice_list(gp, practice):
    response = submit(gp, "/referrals/new", referral_form())
    assert response.status_code == 302
    referral = db.session.scalar(select(Referral))
    assert response.headers["Location"] == f"/referrals/{referral.id}"
    assert referral.gp_practice_id == practice.id
    assert referral.status is Status.RECEIVED
    assert referral.patient.nhs_number == "9434765919"
    assert referral.patient.postcode == "GL1 2AB"
    assert referral.interests == ["singing", "music"]
    assert referral.transitions[0].to_status is Status.RECEIVED
    page = gp.get("/referrals/").get_data(as_text=True)
    assert "Margaret Atkins" in page and f"R{referral.id}" in page


def test_a_second_open_referral_is_stopped_with_a_link_to_the_first(gp):
    submit(gp, "/referrals/new", referral_form())
    first = db.session.scalar(select(Referral))
    response = submit(gp, "/referrals/new", referral_form(reason="Second try"))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "This person already has an open referral" in page
    assert f'href="/referrals/{first.id}"' in page
    assert "Second try" in page  # the user's input is kept
    assert count(Referral) == 1


def test_a_new_episode_reason_allows_a_second_referral(gp):
    submit(gp, "/referrals/new", referral_form())
    response = submit(
        gp,
        "/referrals/new",
        referral_form(new_episode_reason="Finished the choir; now referred for anxiety"),
    )
    assert response.status_code == 302
    assert count(Referral) == 2
    assert count(Patient) == 1


def test_closed_referrals_are_linked_as_history(gp, link_worker):
    submit(gp, "/referrals/new", referral_form())
    first = db.session.scalar(select(Referral))
    submit(
        link_worker, f"/referrals/{first.id}/status", {"to": "declined", "reason": "Not ready yet"}
    )
    response = submit(gp, "/referrals/new", referral_form())
    assert response.status_code == 302
    second = db.session.scalars(select(Referral).order_by(Referral.id.desc())).first()
    page = gp.get(f"/referrals/{second.id}").get_data(as_text=True)
    assert "Other referrals for Margaret" in page
    assert f'href="/referrals/{first.id}"' in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("nhs_number", "943 476 5918", "not a valid NHS number"),
        ("nhs_number", "12345", "NHS number must be 10 digits"),
        ("date_of_birth", "1/1/2099", "Date of birth must be today or in the past"),
        ("date_of_birth", "31/2/1950", "Enter a real date"),
        ("received_on", "31/12/1999", "Date received must be on or after 1 January 2000"),
        ("postcode", "GL1 2CI", "Enter a real UK postcode"),
        ("consent", None, "Confirm the person agrees to be referred"),
        ("pathway", "", "Select a pathway"),
        ("given_name", "x" * 101, "First name must be 100 characters or fewer"),
        ("email", "not-an-email", "Enter an email address in the correct format"),
    ],
)
def test_bad_input_is_shown_at_the_field_and_nothing_is_stored(gp, field, value, message):
    response = submit(gp, "/referrals/new", referral_form(**{field: value}))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert message in page.replace("&#39;", "'")
    assert f'href="#{field}"' in page  # the error summary links to the field
    assert "<title>Error:" in page
    if field != "given_name":
        assert 'value="Margaret"' in page  # other input kept
    assert count(Referral) == 0 and count(Patient) == 0


def test_no_contact_method_is_refused(gp):
    response = submit(gp, "/referrals/new", referral_form(phone="", email=""))
    page = response.get_data(as_text=True)
    assert "Enter a phone number or an email address" in page
    assert count(Referral) == 0


def test_a_known_nhs_number_prefills_the_form_within_scope(gp, practice, login_as):
    submit(gp, "/referrals/new", referral_form())
    response = submit(gp, "/referrals/new", {"nhs_number": "9434765919", "action": "lookup"})
    page = response.get_data(as_text=True)
    assert 'value="Margaret"' in page and 'value="GL1 2AB"' in page
    assert "There is a problem" not in page
    other_gp = login_as(Role.REFERRER)
    response = submit(other_gp, "/referrals/new", {"nhs_number": "9434765919", "action": "lookup"})
    assert "Margaret" not in response.get_data(as_text=True)


def test_another_practice_gets_404_and_artists_are_refused(gp, login_as):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    other_gp = login_as(Role.REFERRER)
    assert other_gp.get(f"/referrals/{referral.id}").status_code == 404
    assert other_gp.get(f"/referrals/{referral.id}/letter.pdf").status_code == 404
    assert "Margaret" not in other_gp.get("/referrals/").get_data(as_text=True)
    assert login_as(Role.ARTIST).get(f"/referrals/{referral.id}").status_code == 403
    assert login_as(Role.COMMISSIONER).get("/referrals/").status_code == 403


def test_link_worker_contacts_assesses_and_the_timeline_shows_every_step(gp, link_worker):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    url = f"/referrals/{referral.id}"
    submit(link_worker, f"{url}/contact", {"method": "phone", "outcome": "no_answer"})
    submit(
        link_worker,
        f"{url}/contact",
        {"method": "phone", "outcome": "spoke", "note": "Call back Thursday"},
    )
    response = submit(
        link_worker,
        f"{url}/conversation",
        {
            "held_on": clock.today().strftime("%d/%m/%Y"),
            "what_matters": "Getting out of the house; she misses singing",
            "preferred_art_forms": ["singing"],
        },
    )
    assert response.status_code == 302
    db.session.refresh(referral)
    assert referral.status is Status.ASSESSED
    assert referral.snomed_code == "871731000000106"
    assert count(ContactAttempt) == 2
    steps = [(t.from_status, t.to_status) for t in referral.transitions]
    assert steps == [
        (None, Status.RECEIVED),
        (Status.RECEIVED, Status.CONTACTING),
        (Status.CONTACTING, Status.ASSESSED),
    ]
    page = link_worker.get(url).get_data(as_text=True)
    for text in (
        "Referral received",
        "Contact attempt: phone, no answer",
        "Contact attempt: phone, spoke to them",
        "Call back Thursday",
        "Received → Contacting",
        "Contacting → Assessed",
        "What matters conversation recorded",
        "misses singing",
    ):
        assert text in page, text
    # The practice is told the person accepted support.
    message = db.session.scalar(select(Notification).where(Notification.kind == "message_back"))
    assert "accepted" in message.text and message.organisation_id == referral.gp_practice_id
    assert "accepted social prescribing support" in gp.get("/messages/").get_data(as_text=True)


def test_closing_as_declined_records_the_code_and_the_letter_names_it(gp, link_worker):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    url = f"/referrals/{referral.id}"
    missing = submit(link_worker, f"{url}/status", {"to": "declined", "reason": ""})
    assert "Give a reason" in missing.get_data(as_text=True)
    assert db.session.get(Referral, referral.id).status is Status.RECEIVED
    response = submit(
        link_worker,
        f"{url}/status",
        {"to": "declined", "reason": "Prefers to join a walking group"},
    )
    assert response.status_code == 302
    db.session.refresh(referral)
    assert referral.status is Status.DECLINED
    assert referral.snomed_code == "871711000000103"
    assert referral.closed_on is not None
    page = gp.get(url).get_data(as_text=True)
    assert "Received → Declined" in page and "Prefers to join a walking group" in page
    pdf = gp.get(f"{url}/letter.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.headers["Cache-Control"] == "no-store"
    assert pdf_text(pdf.data).count("871711000000103") >= 1


def test_a_refused_transition_is_a_message_not_a_change(gp, link_worker):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    response = submit(
        link_worker, f"/referrals/{referral.id}/status", {"to": "completed", "reason": "x"}
    )
    assert response.status_code == 200
    assert "Not a valid choice" in response.get_data(as_text=True)
    assert db.session.get(Referral, referral.id).status is Status.RECEIVED
    assert count(ReferralTransition) == 1


def test_reopening_a_closed_referral(gp, link_worker):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    url = f"/referrals/{referral.id}"
    submit(link_worker, f"{url}/status", {"to": "withdrawn", "reason": "Moved away"})
    response = submit(
        link_worker, f"{url}/status", {"to": "contacting", "reason": "Moved back and asked again"}
    )
    assert response.status_code == 302
    db.session.refresh(referral)
    assert referral.status is Status.CONTACTING and referral.closed_on is None


def test_referrers_cannot_triage(gp):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    assert gp.get(f"/referrals/{referral.id}/contact").status_code == 403
    assert gp.get(f"/referrals/{referral.id}/status").status_code == 403


def test_viewing_a_referral_is_audited(gp):
    submit(gp, "/referrals/new", referral_form())
    referral = db.session.scalar(select(Referral))
    gp.get(f"/referrals/{referral.id}")
    event_row = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "referral.viewed"))
    assert event_row.object_id == str(referral.id) and event_row.actor_id == gp.user.id


def test_caseload_puts_new_and_flagged_first_and_highlights_late_contact(link_worker, app):
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    actor = link_worker.user
    numbers = nhs_numbers()
    today = clock.today()
    old = make_referral(
        actor,
        practice,
        nhs=next(numbers),
        today=today,
        family_name="Ogden",
        received_on=today - timedelta(days=30),
    )
    flagged = make_referral(
        actor,
        practice,
        nhs=next(numbers),
        today=today,
        family_name="Fletcher",
        received_on=today - timedelta(days=1),
        risk_flag=True,
        risk_note="Lives alone; recent fall",
    )
    recent = make_referral(
        actor, practice, nhs=next(numbers), family_name="Reeves", received_on=today, today=today
    )
    contacting = make_referral(
        actor,
        practice,
        nhs=next(numbers),
        today=today,
        family_name="Carter",
        received_on=today - timedelta(days=40),
    )
    from referrals.intake.services import log_contact_attempt
    from referrals.vocab import ContactMethod, ContactOutcome

    log_contact_attempt(
        actor, contacting, method=ContactMethod.PHONE, outcome=ContactOutcome.NO_ANSWER
    )
    db.session.commit()
    page = link_worker.get("/referrals/").get_data(as_text=True)
    order = [page.index(name) for name in ("Fletcher", "Ogden", "Reeves", "Carter")]
    assert order == sorted(order)
    assert page.count("Not contacted in 5 working days") == 1
    assert page.index("Not contacted in 5 working days") > page.index("Ogden")
    filtered = link_worker.get("/referrals/?status=contacting").get_data(as_text=True)
    assert "Carter" in filtered and "Ogden" not in filtered
    searched = submit(link_worker, "/referrals/", {"q": flagged.patient.nhs_number})
    assert "Fletcher" in searched.get_data(as_text=True)
    assert "Ogden" not in searched.get_data(as_text=True)
    by_name = submit(link_worker, "/referrals/", {"q": "ree"}).get_data(as_text=True)
    assert "Reeves" in by_name and "Ogden" not in by_name
    assert old and recent


@pytest.mark.slow
def test_list_pages_use_a_bounded_number_of_queries(link_worker, login_as, app):
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    gp_user = factories.make_user(Role.REFERRER, organisation=practice)
    gp_client = login_as(gp_user)
    numbers = nhs_numbers()
    counts = {}
    for size in (10, 500):
        while db.session.scalar(select(func.count()).select_from(Referral)) < size:
            make_referral(gp_user, practice, nhs=next(numbers))
        db.session.commit()
        counts[size] = (
            queries_for(link_worker, "/referrals/"),
            queries_for(gp_client, "/referrals/"),
        )
    assert counts[10] == counts[500]
    assert max(counts[500]) <= 11  # one of them writes the audit entries for the people shown


def test_control_characters_are_a_field_error(gp):
    response = submit(gp, "/referrals/new", referral_form(given_name="Mar\x00garet"))
    assert "First name must not contain control characters" in response.get_data(as_text=True)
    assert count(Referral) == 0


def test_phone_numbers_read_in_groups_and_dial_internationally(gp, link_worker):
    submit(gp, "/referrals/new", referral_form(phone="01632 960 001"))
    referral = db.session.scalar(select(Referral))
    assert referral.patient.phone == "01632960001"  # stored as digits, found whatever the spacing
    for page in (f"/referrals/{referral.id}", f"/referrals/{referral.id}/contact"):
        html = link_worker.get(page).get_data(as_text=True)
        assert "01632 960001" in html
        assert "01632960001" not in html
    contact = link_worker.get(f"/referrals/{referral.id}/contact").get_data(as_text=True)
    assert 'href="tel:+441632960001"' in contact


@pytest.mark.slow
def test_every_page_of_the_lists_shows_the_next_records_in_order(link_worker, login_as):
    """The lists find a page's records by key, then load them: each page must hold exactly
    the records the list's order puts there, in that order, across page boundaries."""
    import re

    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE)
    gp_user = factories.make_user(Role.REFERRER, organisation=practice)
    numbers = nhs_numbers()
    today = clock.today()
    made = [
        make_referral(
            gp_user,
            practice,
            nhs=next(numbers),
            today=today,
            received_on=today - timedelta(days=n % 9),
            risk_flag=n % 4 == 0,
            risk_note="Lives alone" if n % 4 == 0 else "",
        )
        for n in range(60)
    ]
    db.session.commit()

    def shown(client, url):
        html = client.get(url).get_data(as_text=True)
        return [int(n) for n in re.findall(r">R(\d+)</span>", html)]

    caseload = [shown(link_worker, f"/referrals/?page={n}") for n in (1, 2, 3)]
    expected = sorted(made, key=lambda r: (not r.risk_flag, r.received_on, r.id))
    assert caseload == [[r.id for r in expected[i : i + 25]] for i in (0, 25, 50)]
    gp = login_as(gp_user)
    practice_pages = [shown(gp, f"/referrals/?page={n}") for n in (1, 2, 3)]
    newest_first = sorted(made, key=lambda r: (r.received_on, r.id), reverse=True)
    assert practice_pages == [[r.id for r in newest_first[i : i + 25]] for i in (0, 25, 50)]


def test_by_key_puts_records_in_the_order_of_their_keys():
    from types import SimpleNamespace

    from referrals.pagination import by_key

    records = [SimpleNamespace(id=n) for n in (5, 1, 9)]
    assert [r.id for r in by_key([9, 5, 1], records)] == [9, 5, 1]
    assert [r.id for r in by_key([9, 7, 1], records)] == [9, 1]
