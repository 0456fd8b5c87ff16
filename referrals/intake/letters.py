"""The message back to the referring practice, as a PDF letter (reportlab, built in memory)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle
from sqlalchemy import select

from referrals import clock
from referrals.courses.models import Enrolment
from referrals.courses.services import attendance_counts
from referrals.documents import Document, sample_styles
from referrals.extensions import db
from referrals.intake.identity import person_as_referred
from referrals.intake.lifecycle import (
    CLOSING_STATUSES,
    SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING,
    SNOMED_SOCIAL_PRESCRIBING_DECLINED,
    Status,
)
from referrals.intake.models import Referral, ReferralTransition
from referrals.intake.validation import format_nhs_number
from referrals.outcomes.queries import enrolment_wellbeing
from referrals.outcomes.scoring import Instrument, Timepoint

SNOMED_TERMS = {
    SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING: "Referral to social prescribing service",
    SNOMED_SOCIAL_PRESCRIBING_DECLINED: "Social prescribing declined",
}


@dataclass(frozen=True)
class OutcomeSummary:
    """What the letter can say beyond the status, when known."""

    course: str | None = None
    sessions_attended: int | None = None
    sessions_delivered: int | None = None
    wellbeing_baseline: float | None = None
    wellbeing_end: float | None = None

    @property
    def wellbeing_change(self) -> float | None:
        """End minus baseline SWEMWBS metric score, when both are recorded."""
        if self.wellbeing_baseline is None or self.wellbeing_end is None:
            return None
        return self.wellbeing_end - self.wellbeing_baseline


def outcome_summary(referral: Referral) -> OutcomeSummary:
    """Attendance and wellbeing on the person's latest course; empty before any course."""
    enrolment = db.session.scalars(
        select(Enrolment)
        .where(Enrolment.referral_id == referral.id)
        .order_by(Enrolment.created_at.desc(), Enrolment.id.desc())
    ).first()
    if enrolment is None:
        return OutcomeSummary()
    delivered, attended = attendance_counts(enrolment.course_id)
    history = enrolment_wellbeing(enrolment)
    baseline = history.latest(Instrument.SWEMWBS, Timepoint.BASELINE)
    end = history.latest(Instrument.SWEMWBS, Timepoint.END)
    return OutcomeSummary(
        course=enrolment.course.title,
        sessions_attended=attended.get(enrolment.id, 0),
        sessions_delivered=delivered,
        wellbeing_baseline=float(baseline) if baseline is not None else None,
        wellbeing_end=float(end) if end is not None else None,
    )


def letter_event(referral: Referral) -> str | None:
    """Which message back applies now: completed, closed, accepted, or none yet."""
    if referral.status is Status.COMPLETED:
        return "completed"
    if referral.status in CLOSING_STATUSES:
        return "closed"
    if referral.snomed_code == SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING:
        return "accepted"
    return None


@dataclass(frozen=True)
class MessageBack:
    """What the referring practice is told now: the referral page shows it, the letter says it."""

    headline: str
    summary: OutcomeSummary
    code: str | None  # SNOMED CT code to record in the GP record
    sent_on: date  # the day of the move the message reports

    @property
    def code_term(self) -> str:
        return SNOMED_TERMS[self.code] if self.code else ""


def message_back(referral: Referral) -> MessageBack | None:
    """The message back as it stands, or None before there is anything to tell."""
    event = letter_event(referral)
    if event is None:
        return None
    step = _reported_step(referral, event)
    return MessageBack(
        _headline(referral, event),
        outcome_summary(referral),
        # A code only where the move recorded one (`snomed_code_for`): accepting support at
        # the first interaction, or declining. Completing a course records none.
        step.snomed_code if step is not None else None,
        step.at.astimezone(clock.zone()).date() if step is not None else clock.today(),
    )


def _reported_step(referral: Referral, event: str) -> ReferralTransition | None:
    """The move the message back reports: the latest that accepted support, or that reached
    the current status."""
    for step in reversed(referral.transitions):
        if event == "accepted":
            if step.snomed_code == SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING:
                return step
        elif step.to_status == referral.status:
            return step
    return None


def _headline(referral: Referral, event: str) -> str:
    name = person_as_referred(referral).full_name
    if event == "completed":
        return f"{name} has completed their arts on prescription course."
    if event == "closed":
        return f"The referral for {name} has been closed: {referral.status.label.lower()}."
    return f"{name} has accepted support from the social prescribing link worker service."


LETTER_HEADING = "Arts on Prescription — message back to the referrer"
CODE_HEADING = "Code to record in the patient's GP record"
LETTER_NOTICE = (
    "This letter is sent to the referring practice through the Arts on Prescription service. "
    "It contains personal information: store it in the patient's record."
)


@dataclass(frozen=True)
class Letter:
    """The letter's words, decided once: the PDF prints them and the letter's page shows them,
    so the two cannot say different things."""

    title: str
    addressee: str
    dated: str
    headline: str
    details: tuple[tuple[str, str], ...]  # (label, value), in the order printed
    code: str | None
    code_term: str


def letter_content(referral: Referral, message: MessageBack) -> Letter:
    """What the letter to the referring practice says, dated the day the message was sent."""
    event = letter_event(referral) or "accepted"
    summary = message.summary
    patient = person_as_referred(referral)  # the letter goes to the referring practice
    practice = referral.gp_practice
    details = [
        ("Patient", patient.full_name),
        ("NHS number", format_nhs_number(patient.nhs_number or "")),
        (
            "Date of birth",
            patient.date_of_birth.strftime("%-d %B %Y")
            if patient.date_of_birth and not getattr(patient, "anonymised_at", None)
            else "",
        ),
        ("Referral", f"R{referral.id}, received {referral.received_on.strftime('%-d %B %Y')}"),
        ("Pathway", referral.pathway.label),
        ("Outcome", referral.status.label),
    ]
    if summary.course:
        details.append(("Course", summary.course))
    if summary.sessions_delivered:
        details.append(
            (
                "Attendance",
                f"{summary.sessions_attended or 0} of {summary.sessions_delivered} "
                "sessions attended",
            )
        )
    if summary.wellbeing_baseline is not None and summary.wellbeing_end is not None:
        change = summary.wellbeing_end - summary.wellbeing_baseline
        details.append(
            (
                "Wellbeing (SWEMWBS)",
                f"{summary.wellbeing_baseline:.2f} at the start, "
                f"{summary.wellbeing_end:.2f} at the end ({change:+.2f})",
            )
        )
    closing = next(
        (t for t in reversed(referral.transitions) if t.to_status == referral.status), None
    )
    if event == "closed" and closing is not None and closing.reason:
        details.append(("Reason", closing.reason))
    return Letter(
        title=f"Referral R{referral.id} outcome",
        addressee=practice.name + (f" ({practice.ods_code})" if practice.ods_code else ""),
        dated=message.sent_on.strftime("%-d %B %Y"),
        headline=_headline(referral, event),
        details=tuple(details),
        code=message.code,
        code_term=message.code_term,
    )


def build_outcome_letter(referral: Referral, message: MessageBack) -> bytes:
    """The message back as a PDF letter, dated the day the message was sent."""
    letter = letter_content(referral, message)
    styles = sample_styles()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=10.5, leading=14)
    small = ParagraphStyle("small", parent=body, fontSize=9, textColor=colors.HexColor("#4c6272"))
    buffer = io.BytesIO()
    doc = Document(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=letter.title,
        author="Arts on Prescription",
        subject=LETTER_HEADING,
    )
    story = [
        Paragraph(escape(LETTER_HEADING), styles["Title"]),
        Paragraph(escape(f"To: {letter.addressee}"), body),
        Paragraph(escape(f"Date: {letter.dated}"), body),
        Spacer(1, 6 * mm),
        Paragraph(escape(letter.headline), styles["Heading2"]),
    ]
    table = Table(
        [[Paragraph(escape(k), body), Paragraph(escape(v), body)] for k, v in letter.details],
        colWidths=[45 * mm, 125 * mm],
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#d8dde0")),
                ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f0f4f5")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [table, Spacer(1, 6 * mm)]
    if letter.code:
        story += [
            Paragraph(escape(CODE_HEADING), styles["Heading3"]),
            Paragraph(f"SNOMED CT <b>{letter.code}</b> — {escape(letter.code_term)}", body),
            Spacer(1, 4 * mm),
        ]
    story.append(Paragraph(escape(LETTER_NOTICE), small))
    doc.build(story)
    return buffer.getvalue()
