"""Every PDF prints every name: an embedded Unicode font, a language, a title, whole headings."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from pypdf import PdfReader

from referrals.courses.register_files import build_register_pdf
from referrals.documents import FONT, FONT_BOLD
from referrals.extensions import db
from referrals.intake.letters import MessageBack, build_outcome_letter, outcome_summary
from tests.intake_helpers import pdf_fonts, pdf_text
from tests.test_register_files import build_world

NAME = ("Łucja", "Wójcik-Şahin Ελένη")
FULL_NAME = "Łucja Wójcik-Şahin Ελένη"
WELSH = ("Siân", "Llŷr Ŵyn")


def words(data: bytes) -> str:
    return " ".join(pdf_text(data).split())


def assert_accessible_metadata(data: bytes, title: str) -> None:
    reader = PdfReader(io.BytesIO(data))
    assert reader.trailer["/Root"]["/Lang"] == "en-GB"
    assert reader.trailer["/Root"]["/ViewerPreferences"]["/DisplayDocTitle"]
    assert reader.metadata is not None and reader.metadata.title == title


def test_a_register_prints_polish_turkish_greek_and_welsh_names(app: Any) -> None:
    world = build_world(names=[NAME, WELSH])
    data = build_register_pdf(world.session, world.enrolments, service_name="Arts")

    text = words(data)
    assert FULL_NAME in text
    assert "Siân Llŷr Ŵyn" in text
    assert pdf_fonts(data) == {FONT, FONT_BOLD}
    session = world.session
    assert_accessible_metadata(data, f"Register: {world.course.title}, {session.date:%-d %B %Y}")


def test_register_headings_never_break_inside_a_word(app: Any) -> None:
    world = build_world()
    lines = pdf_text(build_register_pdf(world.session, world.enrolments, service_name="Arts"))
    for heading in ("Attended", "Apologies", "ID", "Phone", "Note"):
        assert heading in lines.split(), heading
    for heading in ("No show", "Mood before", "Mood after"):
        assert all(word in lines.split() for word in heading.split()), heading


def test_a_letter_prints_the_name_as_written(app: Any) -> None:
    world = build_world(names=[NAME])
    referral = world.referrals[0]
    db.session.refresh(referral)

    message = MessageBack(
        headline="Started the course",
        summary=outcome_summary(referral),
        code=None,
        sent_on=date(2026, 12, 7),
    )
    data = build_outcome_letter(referral, message)

    text = pdf_text(data)
    assert FULL_NAME in text.splitlines() or FULL_NAME in " ".join(text.split())
    assert pdf_fonts(data) == {FONT, FONT_BOLD}
    assert_accessible_metadata(data, f"Referral R{referral.id} outcome")
