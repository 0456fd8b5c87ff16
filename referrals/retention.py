"""Retention: anonymising and erasing a person's record while every aggregate stays as it was.

Anonymising removes everything that identifies the person: NHS number, names, phone, email,
the inward half of the postcode, access and communication needs, and every free-text reason and
note about them (referral, risk, status changes, contact attempts, conversations, withdrawals,
register notes). It keeps ids, statuses, dates, pathways, sex, ethnic group, attendance marks,
moods and wellbeing scores, so every KPI figure computed again from the records, and every
stored return, is unchanged. The date of birth is replaced by a stand-in that puts the person in
the same age band on every date a figure uses it (see `band_preserving_birth_date`).

Erasing, for a request under UK GDPR article 17, anonymises and then also removes what no figure
needs: the outward postcode, art-form interests and preferences, and every message about their
referrals. Rows the figures count (the person, referrals, transitions, attendance, scores) stay,
without identifiers: an anonymous row is no longer personal data.

Both also drop any stored API answer that shows the person and any details another practice
sent about them for reconciliation, and are written to the audit log by
id only. `anonymise_expired` is the scheduled retention rule.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from flask import current_app
from sqlalchemy import Select, delete, exists, func, or_, select
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
from referrals.intake.lifecycle import OPEN_STATUSES
from referrals.intake.models import IdempotentRequest, Patient, PatientReconciliation, Referral
from referrals.intake.validation import age_on, format_nhs_number
from referrals.notifications.models import MessageStatus, Notification, OutboundMessage

# The KPI engine's own banding, so the stand-in birth date can never disagree with it.
from referrals.reports.kpi import _age_band

REMOVED = "[removed]"
ANONYMOUS_GIVEN_NAME = "Anonymised"
ANONYMOUS_FAMILY_NAME = "person"
REASON_MAX = 500
BATCH = 100  # people anonymised per committed transaction by the scheduled job


class Mode(enum.StrEnum):
    ANONYMISE = "anonymise"
    ERASE = "erase"


class ReasonRequired(ValueError):
    """Anonymising or erasing on request needs a reason for the audit log."""


def anonymise_patient(actor: Any, patient: Patient, reason: str) -> None:
    """Remove everything that identifies `patient`, keeping what the figures count."""
    _remove(actor, patient, reason, Mode.ANONYMISE)


def erase_patient(actor: Any, patient: Patient, reason: str) -> None:
    """Anonymise `patient`, then remove what no figure needs (see the module docstring)."""
    _remove(actor, patient, reason, Mode.ERASE)


# Identifiers --------------------------------------------------------------------------------


def outward_code(postcode: str | None) -> str | None:
    """The district half of a postcode ("GL1 2AB" -> "GL1"); None when there is none."""
    compact = re.sub(r"\s+", "", postcode or "").upper()
    if len(compact) < 5:
        return compact or None
    return compact[:-3]


def _digits_pattern(digits: str) -> str:
    """Digits in order, allowing spaces or hyphens between them (how people type numbers)."""
    return r"[\s-]?".join(re.escape(d) for d in digits)


def identifier_patterns(patient: Patient) -> list[re.Pattern[str]]:
    """Patterns for the person's identifiers as they might be typed into free text."""
    patterns: list[str] = []
    # Once anonymised, the names are placeholders shared by everyone anonymised.
    names = [] if patient.anonymised_at else [patient.given_name, patient.family_name]
    names += [" ".join(names)] if names else []
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len)[::-1]:
        patterns.append(rf"(?<!\w){re.escape(name)}(?!\w)")
    for number in (patient.nhs_number, patient.phone):
        digits = re.sub(r"\D", "", number or "")
        if len(digits) >= 6:
            patterns.append(_digits_pattern(digits))
    if patient.email:
        patterns.append(re.escape(patient.email))
    compact = re.sub(r"\s+", "", patient.postcode or "")
    if len(compact) >= 5:
        patterns.append(r"\s?".join([re.escape(compact[:-3]), re.escape(compact[-3:])]))
    if patient.date_of_birth:
        born = patient.date_of_birth
        shapes = {
            born.isoformat(),
            f"{born.day}/{born.month}/{born.year}",
            f"{born.day:02d}/{born.month:02d}/{born.year}",
            f"{born.day} {born:%B %Y}",
            f"{born.day} {born:%b %Y}",
        }
        patterns += [re.escape(shape) for shape in shapes]
    return [re.compile(p, re.IGNORECASE) for p in patterns]


def redact(text: str, patterns: Iterable[re.Pattern[str]]) -> str:
    for pattern in patterns:
        text = pattern.sub(REMOVED, text)
    return text


def _plain_identifiers(patient: Patient) -> list[str]:
    """Strings worth a database search in message texts (a lone first name would match many)."""
    name = None if patient.anonymised_at else patient.full_name
    values = [name, patient.email, patient.phone, patient.nhs_number]
    if patient.nhs_number:
        values.append(format_nhs_number(patient.nhs_number))
    return [v for v in values if v and len(v) >= 5]


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


def _dates_age_may_count(referral_ids: list[int]) -> list[date]:
    """The dates on which the person's age enters a figure: D1 takes it at their first attended
    session of each month (per contract, and so overall); and the day each referral came in,
    so a figure by age at referral would also be unchanged."""
    if not referral_ids:
        return []
    received = db.session.scalars(
        select(Referral.received_on).where(Referral.id.in_(referral_ids))
    ).all()
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
    return [*received, *first.values()]


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


def _remove(
    actor: Any, patient: Patient, reason: str, mode: Mode, *, trigger: str = "request"
) -> None:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("Give a reason")
    patterns = identifier_patterns(patient)
    plain = _plain_identifiers(patient)
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

    # Messages that link to their records, or name them.
    naming_them = [Notification.text.icontains(value, autoescape=True) for value in plain]
    messages_removed = 0
    if mode is Mode.ERASE:
        about_them = [*_links_to(referral_ids, [e.id for e in enrolments]), *naming_them]
        if about_them:
            messages = db.session.scalars(select(Notification).where(or_(*about_them))).all()
            for message in messages:
                db.session.delete(message)
            messages_removed = len(messages)
    elif naming_them:
        for message in db.session.scalars(select(Notification).where(or_(*naming_them))):
            message.text = redact(message.text, patterns)

    answers = _stored_answers_about(patient.id, set(referral_ids))
    for stored in answers:
        db.session.delete(stored)
    # Details another practice sent about them, kept for a link worker to reconcile.
    db.session.execute(
        delete(PatientReconciliation).where(PatientReconciliation.patient_id == patient.id)
    )

    patient.date_of_birth = band_preserving_birth_date(
        patient.date_of_birth, _dates_age_may_count(referral_ids)
    )
    patient.nhs_number = None
    patient.given_name = ANONYMOUS_GIVEN_NAME
    patient.family_name = ANONYMOUS_FAMILY_NAME
    patient.postcode = None if mode is Mode.ERASE else outward_code(patient.postcode)
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
    record(
        actor,
        "patient.erased" if mode is Mode.ERASE else "patient.anonymised",
        patient,
        trigger=trigger,
        # A reason typed by an admin may name the person; the log keeps ids only.
        reason=redact(reason, patterns)[:REASON_MAX],
        referral_ids=referral_ids,
        messages_removed=messages_removed,
        stored_answers_removed=len(answers),
    )


# The retention rule -------------------------------------------------------------------------


def expired_patients(today: date, years: int) -> Select[Any]:
    """People not yet anonymised all of whose referrals closed more than `years` ago."""
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
    return (
        select(Patient)
        .where(Patient.anonymised_at.is_(None), has_referral, ~still_needed)
        .order_by(Patient.id)
    )


def anonymise_expired(today: date, *, years: int | None = None, limit: int | None = None) -> int:
    """Anonymise everyone past the retention period (`RETENTION_YEARS`); returns how many."""
    if years is None:
        years = int(current_app.config["RETENTION_YEARS"])
    query = expired_patients(today, years)
    if limit is not None:
        query = query.limit(limit)
    # Rival scheduler processes on PostgreSQL skip people another one is already anonymising.
    people = list(db.session.scalars(query.with_for_update(skip_locked=True, of=Patient)))
    for patient in people:
        _remove(
            None,
            patient,
            f"All referrals closed more than {years} years ago",
            Mode.ANONYMISE,
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
