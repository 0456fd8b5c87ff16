"""Retention: pseudonymising and erasing a person's record while the figures stay as they were.

What is kept afterwards is *pseudonymised*, not anonymous: rows that the figures count stay,
linked by internal ids, with exact dates, so they are still personal data under UK GDPR and are
protected as such. What is removed and what is kept:

Pseudonymising removes everything that identifies the person: NHS number, names, phone, email,
postcode, access and communication needs, every free-text reason and note about them (referral,
risk, status changes, contact attempts, conversations, withdrawals, register notes), their
messages (in-app and queued email or text) and their name or NHS number wherever another
person's notes, a regeneration reason or a message gives it (`referrals.free_text`). It keeps
ids, statuses, dates, pathways, attendance marks, moods and wellbeing scores, and what section D
of a return counts: sex, ethnic group and, as a stand-in date of birth, the age band on each
date a figure uses it (see `band_preserving_birth_date`). Someone who never attended a session
is counted by no breakdown, so their date of birth, sex and ethnic group go too. Then the
practice's pseudonymised rows are coarsened until each is one of at least
`PSEUDONYMISED_MIN_GROUP` alike (`referrals.pseudonymity`).

So every figure of sections A, B, C and E, made again from the records, and every stored
return, are unchanged; section D made again counts a coarsened person under "not stated" or
"age unknown" (with `PSEUDONYMISED_MIN_GROUP = 1`, nobody is coarsened and section D is
unchanged too).

Erasing, for a request under UK GDPR article 17, pseudonymises and then also removes what no
figure needs: art-form interests and preferences, and every message about their referrals.

Both also drop any stored API answer that shows the person and any details another practice
sent about them for reconciliation, and are written to the audit log by id only.

How long records are kept is one rule, `kept_until`: 8 years (`RETENTION_YEARS`) after the last
referral closed, or for someone referred as a child (under 18) until their 25th birthday if
that is later (NHS Records Management Code). `pseudonymise_expired` is the scheduled rule.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from flask import current_app
from sqlalchemy import Select, and_, delete, exists, func, or_, select
from sqlalchemy.orm import selectinload

from referrals.audit import record
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    SessionStatus,
)
from referrals.db import utcnow
from referrals.extensions import db
from referrals.free_text import (
    REMOVED,
    identifier_patterns,
    identity_of,
    redact,
    remove_from_free_text,
    search_terms,
)
from referrals.intake.lifecycle import OPEN_STATUSES
from referrals.intake.models import IdempotentRequest, Patient, PatientReconciliation, Referral
from referrals.intake.validation import age_on
from referrals.notifications.models import MessageStatus, Notification, OutboundMessage
from referrals.pseudonymity import coarsen_practices

# The KPI engine's own banding and age arithmetic, so retention can never disagree with it.
from referrals.reports.kpi import _age_band, _age_expression
from referrals.vocab import Ethnicity, Sex

__all__ = ["REMOVED"]

PSEUDONYMOUS_GIVEN_NAME = "Pseudonymised"
PSEUDONYMOUS_FAMILY_NAME = "person"
REASON_MAX = 500
BATCH = 100  # people pseudonymised per committed transaction by the scheduled job
CHILD_UNDER = 18  # referred younger than this: kept at least until CHILD_KEPT_TO_AGE
CHILD_KEPT_TO_AGE = 25


class Mode(enum.StrEnum):
    PSEUDONYMISE = "pseudonymise"
    ERASE = "erase"


class ReasonRequired(ValueError):
    """Pseudonymising or erasing on request needs a reason for the audit log."""


def pseudonymise_patient(actor: Any, patient: Patient, reason: str) -> None:
    """Remove everything that identifies `patient`, keeping what the figures count."""
    pseudonymise_people(actor, [patient], reason)


def pseudonymise_people(
    actor: Any, people: list[Patient], reason: str, *, trigger: str = "request"
) -> None:
    """Pseudonymise many people at once: everyone's free text is searched once for them all."""
    _remove_people(actor, people, reason, Mode.PSEUDONYMISE, trigger=trigger)


def erase_patient(actor: Any, patient: Patient, reason: str) -> None:
    """Pseudonymise `patient`, then remove what no figure needs (see the module docstring)."""
    _remove_people(actor, [patient], reason, Mode.ERASE, trigger="request")


# The stand-in date of birth -----------------------------------------------------------------


def band_preserving_birth_date(born: date | None, dates: Iterable[date]) -> date | None:
    """A stand-in birth date in the same KPI age band as `born` on every one of `dates`.

    The dates that satisfy this form one interval around the real date; the stand-in is its
    midpoint, worked out from the interval alone, so it reveals only the age bands the figures
    already count. None when there is no birth date or no date that needs one.
    """
    days = sorted(set(dates))
    if born is None or not days:
        return None
    wanted = [_age_band(age_on(born, day)) for day in days]

    def fits(candidate: date) -> bool:
        return all(
            _age_band(age_on(candidate, day)) == band
            for day, band in zip(days, wanted, strict=True)
        )

    # Search between 150 years before the first date and the first date itself, so the bounds
    # depend on the dates and never on the real birth date (unless that lies outside them).
    floor = min(days[0] - relativedelta(years=150), born)
    ceiling = max(days[0], born)
    earliest = _first_fit(floor, born, fits)
    latest = _last_fit(born, ceiling, fits)
    # An open-ended band (75+, or a wide search range) is narrowed to ten years below the latest.
    earliest = max(earliest, latest - relativedelta(years=10))
    return earliest + timedelta(days=(latest - earliest).days // 2)


def _first_fit(low: date, high: date, fits: Any) -> date:
    """The earliest fitting date in [low, high], given that `high` fits and fits are contiguous."""
    lo, hi = low.toordinal(), high.toordinal()
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(date.fromordinal(mid)):
            hi = mid
        else:
            lo = mid + 1
    return date.fromordinal(lo)


def _last_fit(low: date, high: date, fits: Any) -> date:
    """The latest fitting date in [low, high], given that `low` fits and fits are contiguous."""
    lo, hi = low.toordinal(), high.toordinal()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(date.fromordinal(mid)):
            lo = mid
        else:
            hi = mid - 1
    return date.fromordinal(lo)


def _dates_age_counts(referral_ids: list[int]) -> list[date]:
    """The dates on which the person's age enters a figure: D1 takes it at their first attended
    session of each month (per contract, and so overall). None: no figure needs their age,
    sex or ethnic group."""
    if not referral_ids:
        return []
    attended = db.session.execute(
        select(Course.contract_id, CourseSession.date)
        .join(CourseSession, CourseSession.course_id == Course.id)
        .join(Attendance, Attendance.session_id == CourseSession.id)
        .join(Enrolment, Enrolment.id == Attendance.enrolment_id)
        .where(
            Enrolment.referral_id.in_(referral_ids),
            Attendance.status == AttendanceStatus.ATTENDED,
            CourseSession.status == SessionStatus.DELIVERED,
        )
    ).all()
    first: dict[tuple[int, int, int], date] = {}
    for contract_id, day in attended:
        key = (contract_id, day.year, day.month)
        first[key] = min(first.get(key, day), day)
    return list(first.values())


# Removing -----------------------------------------------------------------------------------


def _scrubbed(value: str) -> str:
    return REMOVED if value and value.strip() else ""


def _links_to(referral_ids: list[int], enrolment_ids: list[int]) -> list[Any]:
    """Conditions for messages whose link points at one of the person's referrals or enrolments."""
    clauses: list[Any] = []
    for prefix, ids in (("/referrals", referral_ids), ("/enrolments", enrolment_ids)):
        for object_id in ids:
            path = f"{prefix}/{object_id}"
            clauses += [Notification.link == path, Notification.link.startswith(f"{path}/")]
    return clauses


def _stored_answers_about(patient_id: int, referral_ids: set[int]) -> list[IdempotentRequest]:
    """Stored API answers that show the person (a created referral or a duplicate warning)."""
    found = []
    for stored in db.session.scalars(select(IdempotentRequest)):
        body = stored.body or {}
        person = body.get("patient")
        if (
            body.get("id") in referral_ids
            or body.get("open_referral_id") in referral_ids
            or (isinstance(person, dict) and person.get("id") == patient_id)
        ):
            found.append(stored)
    return found


def _remove_people(
    actor: Any, people: list[Patient], reason: str, mode: Mode, *, trigger: str
) -> None:
    """Pseudonymise (or erase) each of `people`, then remove their names and NHS numbers from
    everyone's free text in one pass, and coarsen their practices' pseudonymised rows."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("Give a reason")
    identities = [identity_of(patient) for patient in people]
    # A reason typed by an admin may name the person; the log keeps ids only.
    reasons = [redact(reason, identifier_patterns(patient))[:REASON_MAX] for patient in people]
    details = [_strip_record(patient, mode) for patient in people]
    named = remove_from_free_text(identities)
    coarsen_practices({patient.gp_practice_id for patient in people})
    for patient, logged_reason, detail in zip(people, reasons, details, strict=True):
        record(
            actor,
            "patient.erased" if mode is Mode.ERASE else "patient.pseudonymised",
            patient,
            trigger=trigger,
            reason=logged_reason,
            texts_naming_them=named[patient.id],
            **detail,
        )


def _strip_record(patient: Patient, mode: Mode) -> dict[str, Any]:
    """Remove the person's identifiers and free text from their own records; returns what was
    removed, for the audit entry."""
    referrals = list(
        db.session.scalars(
            select(Referral)
            .where(Referral.patient_id == patient.id)
            .options(
                selectinload(Referral.transitions),
                selectinload(Referral.contact_attempts),
                selectinload(Referral.conversations),
            )
        )
    )
    referral_ids = [r.id for r in referrals]
    enrolments = list(
        db.session.scalars(
            select(Enrolment)
            .where(Enrolment.referral_id.in_(referral_ids))
            .options(selectinload(Enrolment.attendance))
        )
    )

    messages_removed = 0
    if mode is Mode.ERASE:
        # In-app messages that link to their records or name them (others are redacted later).
        naming_them = [
            Notification.text.icontains(term, autoescape=True) for term in search_terms(patient)
        ]
        about_them = [*_links_to(referral_ids, [e.id for e in enrolments]), *naming_them]
        if about_them:
            messages = db.session.scalars(select(Notification).where(or_(*about_them))).all()
            for message in messages:
                db.session.delete(message)
            messages_removed = len(messages)
    # Email and text messages to them hold their address and the wording sent to them.
    outbound = db.session.execute(
        delete(OutboundMessage)
        .where(OutboundMessage.patient_id == patient.id)
        .execution_options(synchronize_session=False)
    )

    answers = _stored_answers_about(patient.id, set(referral_ids))
    for stored in answers:
        db.session.delete(stored)
    # Details another practice sent about them, kept for a link worker to reconcile.
    db.session.execute(
        delete(PatientReconciliation).where(PatientReconciliation.patient_id == patient.id)
    )

    counted_on = _dates_age_counts(referral_ids)
    if counted_on:
        patient.date_of_birth = band_preserving_birth_date(patient.date_of_birth, counted_on)
    else:
        # No breakdown counts them: their age, sex and ethnic group are not kept.
        patient.date_of_birth = None
        patient.sex = Sex.NOT_STATED
        patient.ethnicity = Ethnicity.NOT_STATED
    patient.nhs_number = None
    patient.given_name = PSEUDONYMOUS_GIVEN_NAME
    patient.family_name = PSEUDONYMOUS_FAMILY_NAME
    patient.postcode = None
    patient.phone = None
    patient.email = None
    patient.communication_needs = ""
    patient.access_needs = ""
    patient.anonymised_at = patient.anonymised_at or utcnow()

    for referral in referrals:
        referral.reason = _scrubbed(referral.reason)
        referral.risk_note = _scrubbed(referral.risk_note)
        referral.new_episode_reason = _scrubbed(referral.new_episode_reason)
        if mode is Mode.ERASE:
            referral.interests = []
        for step in referral.transitions:
            step.reason = _scrubbed(step.reason)
            step.note = _scrubbed(step.note)
        for attempt in referral.contact_attempts:
            attempt.note = _scrubbed(attempt.note)
        for conversation in referral.conversations:
            conversation.what_matters = _scrubbed(conversation.what_matters)
            conversation.agreed_next_steps = _scrubbed(conversation.agreed_next_steps)
            if mode is Mode.ERASE:
                conversation.preferred_art_forms = []
    for enrolment in enrolments:
        enrolment.withdrawn_reason = _scrubbed(enrolment.withdrawn_reason)
        for mark in enrolment.attendance:
            mark.note = _scrubbed(mark.note)

    db.session.flush()
    return {
        "referral_ids": referral_ids,
        "messages_removed": messages_removed,
        "outbound_messages_removed": int(outbound.rowcount or 0),  # type: ignore[attr-defined]
        "stored_answers_removed": len(answers),
    }


# The retention rule -------------------------------------------------------------------------


def kept_until(born: date | None, first_referred: date, last_closed: date, *, years: int) -> date:
    """The last day a person's records are kept whole: `years` after their last referral
    closed, or, for someone referred as a child, their 25th birthday if that is later."""
    until = last_closed + relativedelta(years=years)
    if born is not None and age_on(born, first_referred) < CHILD_UNDER:
        until = max(until, born + relativedelta(years=CHILD_KEPT_TO_AGE))
    return until


def expired_patients(today: date, years: int) -> Select[Any]:
    """People not yet pseudonymised whose records `kept_until` no longer keeps on `today`."""
    cutoff = today - relativedelta(years=years)
    has_referral = exists().where(Referral.patient_id == Patient.id)
    still_needed = exists().where(
        Referral.patient_id == Patient.id,
        or_(
            Referral.status.in_(OPEN_STATUSES),
            Referral.closed_on.is_(None),
            Referral.closed_on >= cutoff,
        ),
    )
    # Referred as a child and not yet past their 25th birthday.
    still_a_young_person = and_(
        Patient.date_of_birth >= today - relativedelta(years=CHILD_KEPT_TO_AGE),
        exists().where(
            Referral.patient_id == Patient.id,
            _age_expression(Patient.date_of_birth, Referral.received_on) < CHILD_UNDER,
        ),
    )
    return (
        select(Patient)
        .where(
            Patient.anonymised_at.is_(None),
            has_referral,
            ~still_needed,
            or_(Patient.date_of_birth.is_(None), ~still_a_young_person),
        )
        .order_by(Patient.id)
    )


def pseudonymise_expired(today: date, *, years: int | None = None, limit: int | None = None) -> int:
    """Pseudonymise everyone past the retention period (`RETENTION_YEARS`); returns how many."""
    if years is None:
        years = int(current_app.config["RETENTION_YEARS"])
    query = expired_patients(today, years)
    if limit is not None:
        query = query.limit(limit)
    # Rival scheduler processes on PostgreSQL skip people another one is already handling.
    people = list(db.session.scalars(query.with_for_update(skip_locked=True, of=Patient)))
    if people:
        pseudonymise_people(
            None,
            people,
            f"Past the retention period ({years} years after the last referral closed, "
            f"or the {CHILD_KEPT_TO_AGE}th birthday of someone referred as a child)",
            trigger="retention",
        )
    return len(people)


def purge_idempotent_requests(now: datetime | None = None, *, hours: int | None = None) -> int:
    """Delete stored API answers older than `IDEMPOTENCY_KEEP_HOURS`; returns how many."""
    if hours is None:
        hours = int(current_app.config["IDEMPOTENCY_KEEP_HOURS"])
    cutoff = (now or utcnow()) - timedelta(hours=hours)
    result = db.session.execute(
        delete(IdempotentRequest)
        .where(IdempotentRequest.created_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# Outbound messages finished with: sent, given up, or no longer wanted.
FINISHED_MESSAGES = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.FAILED,
    MessageStatus.CANCELLED,
)


def purge_outbound_messages(now: datetime | None = None, *, days: int | None = None) -> int:
    """Delete email and text messages finished with (sent, delivered, failed or cancelled)
    more than `OUTBOUND_KEEP_DAYS` ago, counted from their last try; returns how many. Each
    holds a person's address and the wording sent to them."""
    if days is None:
        days = int(current_app.config["OUTBOUND_KEEP_DAYS"])
    cutoff = (now or utcnow()) - timedelta(days=days)
    last_touched = func.coalesce(
        OutboundMessage.sent_at, OutboundMessage.claimed_at, OutboundMessage.created_at
    )
    result = db.session.execute(
        delete(OutboundMessage)
        .where(OutboundMessage.status.in_(FINISHED_MESSAGES), last_touched < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
