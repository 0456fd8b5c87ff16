"""Send, list and mark notifications. Every capability that tells someone something uses these."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, Select, and_, bindparam, exists, func, or_, select

from referrals.auth.models import Organisation, User
from referrals.extensions import db
from referrals.notifications.models import Notification, NotificationRead


def notify(
    *,
    text: str,
    user: User | None = None,
    organisation: Organisation | None = None,
    link: str | None = None,
    kind: str = "general",
    at: datetime | None = None,
) -> Notification:
    """Address a message to one user or to everyone in an organisation.

    `at` dates it, for history loaded after the fact; default now.
    """
    if user is None and organisation is None:
        raise ValueError("a notification needs a user or an organisation")
    notification = Notification(
        user_id=user.id if user else None,
        organisation_id=organisation.id if organisation else None,
        text=text,
        link=link,
        kind=kind,
    )
    if at is not None:
        notification.created_at = at
    db.session.add(notification)
    return notification


def _addressed_to(user: Any) -> Any:
    return or_(
        Notification.user_id == user.id,
        and_(Notification.user_id.is_(None), Notification.organisation_id == user.organisation_id),
    )


def _is_read(user: Any) -> Any:
    return exists().where(
        NotificationRead.notification_id == Notification.id, NotificationRead.user_id == user.id
    )


def inbox_query(user: Any) -> Select[Any]:
    return (
        select(Notification, _is_read(user).label("is_read"))
        .where(_addressed_to(user))
        .order_by(Notification.created_at.desc(), Notification.id.desc())
    )


@cache
def _latest_messages_statement(count: int) -> Select[Any]:
    """The inbox's newest `count` messages for anyone, built once per process: only who is
    asking changes between requests."""
    addressee = SimpleNamespace(
        id=bindparam("user_id"), organisation_id=bindparam("organisation_id")
    )
    return inbox_query(addressee).limit(count)


def latest_messages(user: Any, count: int) -> list[Row[Any]]:
    """The user's newest `count` messages, each (notification, is_read), as the inbox lists them."""
    return list(
        db.session.execute(
            _latest_messages_statement(count),
            {"user_id": user.id, "organisation_id": user.organisation_id},
        ).all()
    )


def unread_count_of(user: Any) -> Any:
    """The number of unread messages as a scalar subquery: `user` is a user, or the `User`
    class itself to correlate it with a query of users (the per-request identity query)."""
    return (
        select(func.count(Notification.id))
        .where(_addressed_to(user), ~_is_read(user))
        .scalar_subquery()
    )


def unread_count(user: Any) -> int:
    return db.session.scalar(select(unread_count_of(user))) or 0


def get_notification_or_404(notification_id: int, user: Any) -> Notification:
    return db.first_or_404(
        select(Notification).where(Notification.id == notification_id, _addressed_to(user))
    )


def mark_read(user: Any, notification: Notification) -> None:
    if db.session.get(NotificationRead, (notification.id, user.id)) is None:
        db.session.add(NotificationRead(notification_id=notification.id, user_id=user.id))


def mark_all_read(user: Any) -> int:
    unread = db.session.scalars(
        select(Notification.id).where(_addressed_to(user), ~_is_read(user))
    ).all()
    db.session.add_all(NotificationRead(notification_id=nid, user_id=user.id) for nid in unread)
    return len(unread)
