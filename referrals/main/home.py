"""What each role's home page shows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, User
from referrals.extensions import db
from referrals.notifications.services import inbox_query


def home_context(user: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "recent_messages": db.session.execute(inbox_query(user).limit(5)).all(),
    }
    if user.role == "admin":
        context.update(_admin_overview())
    return context


def _admin_overview() -> dict[str, Any]:
    organisations_by_kind = dict(
        db.session.execute(
            select(Organisation.kind, func.count())
            .where(Organisation.active.is_(True))
            .group_by(Organisation.kind)
        ).all()
    )
    users_by_role = dict(
        db.session.execute(
            select(User.role, func.count()).where(User.active.is_(True)).group_by(User.role)
        ).all()
    )
    recent_events = db.session.scalars(
        select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(8)
    ).all()
    return {
        "organisations_by_kind": organisations_by_kind,
        "users_by_role": users_by_role,
        "recent_events": recent_events,
    }
