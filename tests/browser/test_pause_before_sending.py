"""A link worker is interrupted half way through a form: the phone rings, a colleague asks
something, and the form is sent minutes later. What she typed is saved as if she had sent it at
once, through the real session, CSRF and SQLite write lock of the live server (whose clock is
moved on with the test's: they share one process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from playwright.sync_api import expect
from sqlalchemy import select

from referrals.auth.models import OrganisationKind, Role, UserSession
from referrals.intake.models import ContactAttempt
from referrals.vocab import ContactOutcome
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import sign_in
from tests.intake_helpers import make_referral

# Past the session's one-minute last-seen refresh, inside the 30-minute idle timeout.
INTERRUPTION = timedelta(minutes=3)


def test_a_contact_logged_minutes_after_opening_the_form_is_saved(page, live_data):
    practice = factories.make_organisation(OrganisationKind.GP_PRACTICE, name="Abbey Road")
    gp = factories.make_user(Role.REFERRER, organisation=practice)
    link_worker = factories.make_user(Role.LINK_WORKER, name="Sam Okafor")
    referral = make_referral(
        gp, practice, nhs="9434765919", given_name="Margaret", family_name="Atkins"
    )
    live_data.commit()
    sign_in(page, link_worker.email)
    page.goto(f"/referrals/{referral.id}/contact")
    expect(page.get_by_role("heading", name="Log a contact attempt", level=1)).to_be_visible()
    audit(page)
    page.get_by_role("group", name="How").get_by_label("Phone", exact=True).check()
    page.get_by_role("group", name="Outcome").get_by_label("Spoke to them", exact=True).check()
    page.get_by_label("Note (optional)").fill("Keen on the choir; call back after her clinic")
    with live_data.fresh() as session:
        seen_before = session.scalar(select(UserSession.last_seen_at))

    with time_machine.travel(datetime.now(UTC) + INTERRUPTION, tick=True):
        page.get_by_role("button", name="Save attempt").click()
        expect(page.get_by_role("status")).to_contain_text("Contact attempt logged")
        audit(page)

    with live_data.fresh() as session:
        attempt = session.scalar(select(ContactAttempt))
        assert attempt is not None
        assert attempt.outcome is ContactOutcome.SPOKE
        assert attempt.note == "Keen on the choir; call back after her clinic"
        # The pause counted as activity: the session's idle clock restarted when she sent it.
        assert session.scalar(select(UserSession.last_seen_at)) - seen_before >= INTERRUPTION
