"""The choir leader prints the paper register from its page rather than the PDF: the page passes
the accessibility check, and printed from the browser it is the register alone, in landscape,
every name as written and every column heading whole."""

from __future__ import annotations

import io

from pypdf import PdfReader

from referrals.auth.models import OrganisationKind, Role
from referrals.courses.register_files import REGISTER_HEADINGS
from referrals.courses.services import enrol
from tests import factories
from tests.browser.accessibility import audit
from tests.browser.helpers import london_today, sign_in
from tests.course_helpers import assessed_referral
from tests.factories import make_course
from tests.intake_helpers import pdf_text

NAMES = [("Łucja", "Wójcik-Şahin Ελένη"), ("Siân", "Llŷr Ŵyn")]


def test_the_register_page_prints_as_the_register_alone(new_context, live_data):
    day = london_today()
    provider = factories.make_organisation(OrganisationKind.PROVIDER, name="Cathedral Voices CIC")
    artist = factories.make_user(Role.ARTIST, organisation=provider, name="Maria Lopez")
    link_worker = factories.make_user(Role.LINK_WORKER)
    course = make_course(provider, start=day, title="Singing for Better Breathing")
    for given, family in NAMES:
        referral = assessed_referral(link_worker, given_name=given, family_name=family)
        enrol(link_worker, referral, course, today=day)
    live_data.commit()
    session = course.sessions[0]

    page = new_context().new_page()
    sign_in(page, artist.email)
    page.goto(f"/sessions/{session.id}/register")
    audit(page)
    page.get_by_role("link", name="Print a paper register").click()
    audit(page)
    table = page.get_by_role("table", name="People expected at this session")
    for given, family in NAMES:
        assert table.get_by_role("rowheader", name=f"{given} {family}").is_visible()

    printed = page.pdf(prefer_css_page_size=True)
    first = PdfReader(io.BytesIO(printed)).pages[0]
    assert first.mediabox.width > first.mediabox.height  # landscape, as the PDF register
    words = pdf_text(printed).split()
    text = " ".join(words)
    for given, family in NAMES:
        assert f"{given} {family}" in text
    for heading in REGISTER_HEADINGS:
        assert heading in text, heading
    for heading in ("Attended", "Apologies", "Phone", "Note"):
        assert heading in words, heading  # never broken inside the word
    for furniture in ("Back to the register", "Download this register", "Sign out"):
        assert furniture not in text, furniture
