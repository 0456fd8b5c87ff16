"""What the service tells people outside it, by email or text: one function per occasion.

Services call these inside their own unit of work; each only queues (see `outbound.py` for
who may get what by which channel, and `sending.py` for how the queue is sent). The jobs
call `queue_time_due` every few minutes for what falls due by the clock: the reminder the day
before a session, registers not taken two days after one, and places still on offer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from referrals import clock
from referrals.auth.models import Organisation, User
from referrals.courses.models import (
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.courses.register_rules import REGISTER_EDIT_DAYS
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.models import Referral
from referrals.notifications.outbound import (
    channels,
    day_text,
    link,
    offer_url,
    participant_address,
    practice_address,
    queue,
    staff_address,
    when_text,
)
from referrals.notifications.sending import LETTER_ATTACHMENT, send_due, session_occasion

REGISTER_OVERDUE_AFTER = timedelta(days=2)


def _venue(venue: Venue) -> dict[str, str]:
    return {"venue": venue.name, "address": " ".join(venue.address.split())}


def _next_session(course: Course, today: date) -> CourseSession | None:
    return db.session.scalars(
        select(CourseSession)
        .where(
            CourseSession.course_id == course.id,
            CourseSession.status == SessionStatus.PLANNED,
            CourseSession.date >= today,
        )
        .order_by(CourseSession.date, CourseSession.start_time)
        .limit(1)
    ).first()


def _place(enrolment: Enrolment, kind: str, today: date, occasion: str, **extra: str) -> bool:
    if not channels():
        return False
    to = participant_address(enrolment.referral)
    session = _next_session(enrolment.course, today)
    if to is None or session is None:
        return False
    context = {
        "course": enrolment.course.title,
        "first_session": when_text(session.date, session.start_time),
        **_venue(session.venue),
        **extra,
    }
    return queue(kind, to, about=("enrolment", enrolment.id), occasion=occasion, context=context)


def enrolment_confirmed(enrolment: Enrolment, *, today: date) -> bool:
    """Tell a person with a new place on a course when and where it starts."""
    at = enrolment.enrolled_at or utcnow()
    return _place(enrolment, "enrolment_confirmed", today, at.isoformat(timespec="seconds"))


def place_offered(enrolment: Enrolment, *, today: date) -> bool:
    """Offer a person a place from the waiting list: when and where, the day to accept it by,
    and the link to accept or decline it."""
    reply_by = enrolment.offer_expires_on
    assert reply_by is not None
    return _place(
        enrolment,
        "waiting_list_place",
        today,
        f"offer-until-{reply_by.isoformat()}",
        reply_by=day_text(reply_by),
        answer_url=offer_url(enrolment.id),
    )


def _participants(session: CourseSession) -> list[Enrolment]:
    return list(
        db.session.scalars(
            select(Enrolment)
            .where(
                Enrolment.course_id == session.course_id,
                Enrolment.status == EnrolmentStatus.ENROLLED,
            )
            .options(selectinload(Enrolment.referral).selectinload(Referral.patient))
            .order_by(Enrolment.id)
        )
    )


def _tell_participants(
    session: CourseSession, kind: str, occasion: str, context: Mapping[str, object]
) -> int:
    if not channels():
        return 0
    queued = 0
    for enrolment in _participants(session):
        to = participant_address(enrolment.referral)
        if to is not None:
            about = ("session", session.id)
            queued += queue(kind, to, about=about, occasion=occasion, context=dict(context))
    return queued


def session_cancelled(session: CourseSession) -> int:
    """Tell everyone on the course that a session is not happening."""
    context = {"course": session.course.title, "when": day_text(session.date)}
    return _tell_participants(session, "session_cancelled", session.date.isoformat(), context)


def session_moved(session: CourseSession, was: date) -> int:
    """Tell everyone on the course that a session moved, and when to now."""
    context = {
        "course": session.course.title,
        "was": day_text(was),
        "when": when_text(session.date, session.start_time),
        **_venue(session.venue),
    }
    return _tell_participants(session, "session_moved", session_occasion(session), context)


def session_changed(session: CourseSession, artist: User, change: str) -> bool:
    """Tell a lead artist that a session of theirs was cancelled or moved (`change` says
    how, in a sentence)."""
    to = staff_address(artist, "session_changed")
    if to is None:
        return False
    return queue(
        "session_changed",
        to,
        about=("session", session.id),
        occasion=f"{session.status.value}@{session_occasion(session)}",
        context={
            "name": artist.name,
            "course": session.course.title,
            "change": change,
            "link": link(f"/courses/{session.course_id}"),
        },
    )


def message_back(referral: Referral, *, event: str, has_code: bool, at: datetime) -> bool:
    """Email the referring practice's shared mailbox, with the letter attached (built when
    sent). The email names only the referral's reference; the letter names the person."""
    practice: Organisation = referral.gp_practice
    to = practice_address(practice)
    if to is None:
        return False
    return queue(
        "message_back",
        to,
        about=("referral", referral.id),
        occasion=f"{event}@{at.isoformat(timespec='seconds')}",
        context={
            "reference": f"R{referral.id}",
            "event": event,
            "has_code": has_code,
            "link": link(f"/referrals/{referral.id}"),
        },
        attachment=LETTER_ATTACHMENT,
    )


def referral_assigned(referral: Referral, link_worker: User, *, at: datetime) -> bool:
    to = staff_address(link_worker, "referral_assigned")
    if to is None:
        return False
    return queue(
        "referral_assigned",
        to,
        about=("referral", referral.id),
        occasion=at.isoformat(timespec="seconds"),
        context={
            "name": link_worker.name,
            "reference": f"R{referral.id}",
            "link": link(f"/referrals/{referral.id}"),
        },
    )


def job_failed(admins: Iterable[User], *, run_id: int, job: str, period: str) -> int:
    queued = 0
    for admin in admins:
        to = staff_address(admin, "job_failed")
        if to is not None:
            queued += queue(
                "job_failed",
                to,
                about=("job_run", run_id),
                occasion="failed",
                context={
                    "name": admin.name,
                    "job": job,
                    "period": period,
                    "link": link("/admin/jobs"),
                },
            )
    return queued


# Due by the clock ----------------------------------------------------------------------


def _planned_sessions_on(day: date) -> list[CourseSession]:
    course = selectinload(CourseSession.course)
    return list(
        db.session.scalars(
            select(CourseSession)
            .where(CourseSession.date == day, CourseSession.status == SessionStatus.PLANNED)
            .options(
                course.selectinload(Course.venue),
                course.selectinload(Course.lead_artists),
                selectinload(CourseSession.moved_venue),
            )
            .order_by(CourseSession.id)
        )
    )


def session_reminders(today: date, now: datetime) -> int:
    """The day before each planned session, from SESSION_REMINDER_HOUR (no texts at night):
    one reminder per person on the course. Keyed by the session's date, time and venue, so a
    moved session is reminded afresh."""
    too_early = now.astimezone(clock.zone()).hour < current_app.config["SESSION_REMINDER_HOUR"]
    if not channels() or too_early:
        return 0
    queued = 0
    for session in _planned_sessions_on(today + timedelta(days=1)):
        context = {
            "course": session.course.title,
            "when": when_text(session.date, session.start_time),
            **_venue(session.venue),
        }
        occasion = session_occasion(session)
        queued += _tell_participants(session, "session_reminder", occasion, context)
    return queued


def registers_overdue(today: date) -> int:
    """Lead artists of sessions two days past with no register yet (once per session)."""
    if not channels():
        return 0
    queued = 0
    for session in _planned_sessions_on(today - REGISTER_OVERDUE_AFTER):
        for artist in session.course.lead_artists:
            to = staff_address(artist, "register_overdue")
            if to is None:
                continue
            queued += queue(
                "register_overdue",
                to,
                about=("session", session.id),
                occasion=session.date.isoformat(),
                context={
                    "name": artist.name,
                    "course": session.course.title,
                    "when": day_text(session.date),
                    "edit_days": REGISTER_EDIT_DAYS,
                    "link": link(f"/sessions/{session.id}/register"),
                },
            )
    return queued


def open_offers(today: date) -> int:
    """Each place still on offer, in case its message was not queued when it was offered (no
    back-end was set up then): the same key as that message, so it is never queued twice."""
    if not channels():
        return 0
    offers = db.session.scalars(
        select(Enrolment)
        .where(
            Enrolment.status == EnrolmentStatus.OFFERED,
            Enrolment.offer_expires_on >= today,
        )
        .options(selectinload(Enrolment.referral).selectinload(Referral.patient))
        .order_by(Enrolment.id)
    )
    return sum(place_offered(enrolment, today=today) for enrolment in offers)


def queue_time_due(today: date, now: datetime) -> int:
    """Queue whatever the clock has made due; harmless to repeat (dedupe keys)."""
    return session_reminders(today, now) + registers_overdue(today) + open_offers(today)


def deliver_due(today: date) -> str:
    """Queue what the clock has made due, commit, then send every message due; a summary.

    The scheduler's job and `referrals notifications send` both do exactly this.
    """
    queued = queue_time_due(today, utcnow())
    db.session.commit()
    return f"{queued} queued; " + send_due().summary()
