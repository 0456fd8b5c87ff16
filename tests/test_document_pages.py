"""The letter to a practice and the printable register as pages: each PDF's accessible version.

Each page and its PDF are made from the same content (`letter_content`, `register_sheet`), and
both are read back as a reader gets them (the PDF's text with pypdf, the page's visible text) to
show they carry the same names and the same figures. The pages are British English, with real
tables (caption, column and row headers), a print stylesheet, the same access rules as the PDFs,
and every view audited.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, OrganisationKind, Role
from referrals.courses.models import AttendanceStatus, SessionStatus
from referrals.courses.register_files import REGISTER_HEADINGS
from referrals.courses.register_rules import RegisterEntry
from referrals.courses.services import save_register
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.intake.services import transition
from referrals.intake.validation import format_nhs_number
from tests.factories import make_organisation, make_user
from tests.intake_helpers import make_referral, nhs_numbers, pdf_text
from tests.test_register_files import World, build_world, london_today

FULL_NAME = "Łucja Wójcik-Şahin Ελένη"
NAMES = (("Łucja", "Wójcik-Şahin Ελένη"), ("Siân", "Llŷr Ŵyn"), ("Bill", "Bloggs"))
APP_CSS = Path(__file__).resolve().parents[1] / "referrals" / "static" / "css" / "app.css"
FIGURE = re.compile(r"\d+(?:\.\d+)?")


class _Document(HTMLParser):
    """The visible text of a page's document (its <article>), less what is not printed, with
    its tables' captions and header cells."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.captions: list[str] = []
        self.headers: list[tuple[str | None, str]] = []  # (scope, text)
        self._depth = 0  # inside the article
        self._skipping = 0  # inside an element that is not printed
        self._stack: list[tuple[str, bool]] = []
        self._cell: tuple[str | None, list[str]] | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "article":
            self._depth += 1
        if not self._depth or tag in ("br", "img", "input", "meta", "link"):
            return
        skip = "app-no-print" in (values.get("class") or "").split()
        self._stack.append((tag, skip))
        self._skipping += skip
        if tag == "caption":
            self._caption = []
        elif tag == "th":
            self._cell = (values.get("scope"), [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._depth -= 1
            return
        if not self._stack:
            return
        opened, skip = self._stack.pop()
        self._skipping -= skip
        if opened == "caption" and self._caption is not None:
            self.captions.append(" ".join("".join(self._caption).split()))
            self._caption = None
        elif opened == "th" and self._cell is not None:
            self.headers.append((self._cell[0], " ".join("".join(self._cell[1]).split())))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if not self._depth or self._skipping:
            return
        self.words += data.split()
        if self._caption is not None:
            self._caption.append(data)
        if self._cell is not None:
            self._cell[1].append(data)

    @property
    def text(self) -> str:
        return " ".join(self.words)


def read_page(html: str) -> _Document:
    document = _Document()
    document.feed(html)
    return document


def flat(data: bytes) -> str:
    return " ".join(pdf_text(data).split())


def figures(text: str) -> Counter[str]:
    return Counter(FIGURE.findall(text))


def audited(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# The letter to the practice -------------------------------------------------------------------


def attended_world() -> World:
    """Three people on a course, each marked at the first session (Łucja attended)."""
    world = build_world(names=NAMES)
    statuses = [AttendanceStatus.ATTENDED, AttendanceStatus.APOLOGIES, AttendanceStatus.NO_SHOW]
    entries = [RegisterEntry(e.id, s) for e, s in zip(world.enrolments, statuses, strict=True)]
    save_register(make_user(Role.ADMIN), world.session, entries, today=london_today())
    db.session.commit()
    return world


def test_the_letter_page_carries_the_names_and_figures_of_the_letter(login_as: Any) -> None:
    world = attended_world()
    referral = world.referrals[0]
    admin = login_as(Role.ADMIN)

    page = admin.get(f"/referrals/{referral.id}/letter")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    shown = read_page(html)
    printed = flat(admin.get(f"/referrals/{referral.id}/letter.pdf").data)

    patient = referral.patient
    nhs_number = format_nhs_number(patient.nhs_number or "")
    for text in (
        FULL_NAME,
        nhs_number,
        referral.gp_practice.name,
        f"{FULL_NAME} has accepted support",
        "Singing for Better Breathing!",
        "1 of 1 sessions attended",
        "SNOMED CT 871731000000106",
    ):
        assert text in shown.text, text
        assert text in printed, text
    assert figures(shown.text) == figures(printed)
    # Each label of the letter heads its row, in a table with a caption.
    assert shown.captions == ["About the referral"]
    rows = [text for scope, text in shown.headers if scope == "row"]
    assert rows[:6] == ["Patient", "NHS number", "Date of birth", "Referral", "Pathway", "Outcome"]
    assert {"Course", "Attendance"} <= set(rows)
    assert '<html lang="en-GB"' in html
    assert f'href="/referrals/{referral.id}/letter.pdf"' in html


def test_a_closed_referral_letter_page_gives_the_reason_and_the_code(login_as: Any) -> None:
    world = build_world(names=NAMES[:1])
    referral = world.referrals[0]
    link_worker = make_user(Role.LINK_WORKER)
    transition(link_worker, referral, Status.DECLINED, reason="Prefers the Côr Meibion choir")
    db.session.commit()
    admin = login_as(Role.ADMIN)

    shown = read_page(admin.get(f"/referrals/{referral.id}/letter").get_data(as_text=True))
    printed = flat(admin.get(f"/referrals/{referral.id}/letter.pdf").data)

    for text in ("Prefers the Côr Meibion choir", "SNOMED CT 871711000000103", "Declined"):
        assert text in shown.text, text
        assert text in printed, text
    assert figures(shown.text) == figures(printed)
    assert ("row", "Reason") in shown.headers


def test_the_referral_page_links_the_letter_page_and_viewing_it_is_audited(
    login_as: Any,
) -> None:
    world = build_world(names=NAMES[:1])
    referral = world.referrals[0]
    link_worker = login_as(Role.LINK_WORKER)

    assert f'href="/referrals/{referral.id}/letter"' in link_worker.get(
        f"/referrals/{referral.id}"
    ).get_data(as_text=True)
    assert link_worker.get(f"/referrals/{referral.id}/letter").status_code == 200
    (event,) = audited("referral.letter_viewed")
    assert event.actor_id == link_worker.user.id
    assert (event.object_type, event.object_id) == ("referral", str(referral.id))


def a_practice() -> Organisation:
    return make_organisation(OrganisationKind.GP_PRACTICE)


def test_there_is_no_letter_page_before_there_is_news(login_as: Any) -> None:
    referral = make_referral(make_user(Role.LINK_WORKER), a_practice(), nhs=next(nhs_numbers()))
    db.session.commit()
    admin = login_as(Role.ADMIN)
    assert admin.get(f"/referrals/{referral.id}/letter").status_code == 404
    assert audited("referral.letter_viewed") == []


def test_only_the_referrals_own_practice_sees_its_letter_page(login_as: Any) -> None:
    world = build_world(names=NAMES[:1])
    referral = world.referrals[0]
    other_gp = login_as(make_user(Role.REFERRER, organisation=a_practice()))
    own_gp = login_as(make_user(Role.REFERRER, organisation=referral.gp_practice))

    assert other_gp.get(f"/referrals/{referral.id}/letter").status_code == 404
    assert login_as(Role.ARTIST).get(f"/referrals/{referral.id}/letter").status_code == 403
    assert own_gp.get(f"/referrals/{referral.id}/letter").status_code == 200


# The printable register -----------------------------------------------------------------------


def test_the_register_page_carries_the_names_and_figures_of_the_register(login_as: Any) -> None:
    world = build_world(names=NAMES)
    client = login_as(world.artist)
    url = f"/sessions/{world.session.id}/register"

    page = client.get(f"{url}/print")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    shown = read_page(html)
    printed = flat(client.get(f"{url}.pdf").data)

    for text in (
        FULL_NAME,
        "Siân Llŷr Ŵyn",
        "Bill Bloggs",
        "Wheelchair user; Hard of hearing",
        "Singing for Better Breathing!",
        world.provider.name,
        "St Mary's church hall, 1 Church Lane, Gloucester, GL1 1AA",
        "10:00 to 11:30",
        "Session 1 of 4",
    ):
        assert text in shown.text, text
        assert text in printed, text
    # The same ids, phones, dates and times: the PDF adds only its page numbers.
    assert figures(shown.text) == figures(re.sub(r"Page \d+", "", printed))
    assert [text for scope, text in shown.headers if scope == "col"] == list(REGISTER_HEADINGS)
    assert [text for scope, text in shown.headers if scope == "row"] == [
        e.referral.patient.full_name for e in world.enrolments
    ]
    assert shown.captions == ["People expected at this session"]
    assert '<html lang="en-GB"' in html
    assert "app-document--register" in html
    assert f'href="{url}.pdf"' in html
    # Never what a register does not need.
    for enrolment in world.enrolments:
        nhs_number = enrolment.referral.patient.nhs_number or ""
        assert nhs_number not in html and format_nhs_number(nhs_number) not in html


def test_the_register_pages_link_the_printable_page_and_viewing_it_is_audited(
    login_as: Any,
) -> None:
    world = build_world()
    client = login_as(world.artist)
    printable = f'href="/sessions/{world.session.id}/register/print"'
    for url in ("/register", "/register/upload"):
        page = client.get(f"/sessions/{world.session.id}{url}").get_data(as_text=True)
        assert printable in page, url

    assert client.get(f"/sessions/{world.session.id}/register/print").status_code == 200
    events = audited("register.print_viewed")
    assert {e.object_id for e in events} == {str(e.id) for e in world.enrolments}
    assert {e.actor_id for e in events} == {world.artist.id}


def test_an_empty_or_cancelled_register_page_says_so(login_as: Any) -> None:
    world = build_world(names=[])
    world.session.status = SessionStatus.CANCELLED
    db.session.commit()
    html = login_as(Role.ADMIN).get(f"/sessions/{world.session.id}/register/print")
    text = read_page(html.get_data(as_text=True)).text
    assert "No one is enrolled on this course yet." in text
    assert "This session has been cancelled." in text


@pytest.mark.parametrize("role", [Role.REFERRER, Role.LINK_WORKER, Role.COMMISSIONER])
def test_the_register_page_is_for_the_courses_artists_and_admins(login_as: Any, role: Role) -> None:
    world = build_world()
    url = f"/sessions/{world.session.id}/register/print"
    assert login_as(role).get(url).status_code == 403
    assert login_as(Role.ARTIST).get(url).status_code == 404  # another provider's artist
    assert login_as(Role.ADMIN).get(url).status_code == 200
    assert audited("register.print_viewed") != []


# Printing -------------------------------------------------------------------------------------


def test_the_print_stylesheet_prints_only_the_document_with_ruled_tables() -> None:
    css = APP_CSS.read_text(encoding="utf-8")
    media = css.index("@media print")
    printed = css[media:]
    assert ".nhsuk-header" in printed and ".app-no-print" in printed
    assert "display: none" in printed
    assert ".nhsuk-table thead { display: table-header-group; }" in printed
    assert "break-inside: avoid" in printed
    # The register prints in landscape, as its PDF does.
    assert "body:has(.app-document--register) { page: register; }" in css
    assert "@page register { size: A4 landscape;" in css
