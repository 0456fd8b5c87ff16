"""Weekly reminders to artists about sessions whose register has not been taken."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from referrals.courses.models import Course, CourseSession, SessionStatus
from referrals.extensions import db
from referrals.notifications.services import notify

KIND = "register_reminder"


def sessions_missing_registers(today: date) -> list[CourseSession]:
    """Sessions in the last seven days, still planned: the register was never saved."""
    return list(
        db.session.scalars(
            select(CourseSession)
            .where(
                CourseSession.date >= today - timedelta(days=7),
                CourseSession.date < today,
                CourseSession.status == SessionStatus.PLANNED,
            )
            .options(
                selectinload(CourseSession.course).selectinload(Course.lead_artists),
                selectinload(CourseSession.course).selectinload(Course.provider),
            )
            .order_by(CourseSession.date)
        )
    )


def remind_missing_registers(today: date) -> str:
    """Tell each course's lead artists (or its provider); returns a summary."""
    by_course: dict[int, list[CourseSession]] = defaultdict(list)
    for session in sessions_missing_registers(today):
        by_course[session.course_id].append(session)
    sent = 0
    for sessions in by_course.values():
        course = sessions[0].course
        dates = ", ".join(s.date.strftime("%-d %b") for s in sessions)
        text = (
            f"{course.title}: the register for {dates} has not been taken. You can still "
            f"take it for 7 days after the session."
        )
        link = f"/sessions/{sessions[0].id}/register"
        if course.lead_artists:
            for artist in course.lead_artists:
                notify(user=artist, text=text, link=link, kind=KIND)
                sent += 1
        else:
            notify(organisation=course.provider, text=text, link=link, kind=KIND)
            sent += 1
    db.session.commit()
    return f"{sent} reminder{'s' if sent != 1 else ''} sent"
