"""Server-side sessions: the signed cookie carries a random token whose row can be revoked.

Flask's cookie session cannot be revoked on its own, so every signed-in browser has a
`UserSession` row. Logout, password change and deactivation revoke rows; a replayed old cookie
then finds a revoked (or missing) row and is treated as signed out. Idle and absolute timeouts
are enforced here too.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app, request, session
from sqlalchemy import select, update

from referrals.auth.models import User, UserSession
from referrals.db import utcnow
from referrals.extensions import db

SESSION_KEY = "sid"
# Refresh last-seen at most this often, so reads do not turn every request into a write.
_TOUCH_INTERVAL = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: User) -> UserSession:
    """Begin a fresh session for `user`, discarding whatever the browser held before."""
    session.clear()
    token = secrets.token_urlsafe(32)
    row = UserSession(token_hash=_digest(token), user_id=user.id, ip_address=request.remote_addr)
    db.session.add(row)
    db.session.flush()
    session[SESSION_KEY] = token
    session.permanent = True
    return row


def current_session_row() -> UserSession | None:
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None
    return db.session.scalar(select(UserSession).where(UserSession.token_hash == _digest(token)))


def session_expired(row: UserSession, now: datetime) -> bool:
    config = current_app.config
    return (
        row.revoked_at is not None
        or now - row.last_seen_at > config["SESSION_IDLE_TIMEOUT"]
        or now - row.created_at > config["SESSION_ABSOLUTE_TIMEOUT"]
    )


def load_user_for_session(user_id: str) -> User | None:
    """Flask-Login's user loader: only a live, unrevoked session row yields its user."""
    row = current_session_row()
    if row is None or str(row.user_id) != user_id:
        return None
    now = utcnow()
    if session_expired(row, now):
        return None
    user = db.session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if now - row.last_seen_at > _TOUCH_INTERVAL:
        _touch(row.id, now)
    return user


def _touch(row_id: int, now: datetime) -> None:
    # A separate short transaction that starts with its write: safe on SQLite during a GET.
    with db.engine.begin() as connection:
        connection.execute(
            update(UserSession).where(UserSession.id == row_id).values(last_seen_at=now)
        )


def end_current_session() -> None:
    row = current_session_row()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    session.clear()


def revoke_all_sessions(user: User) -> int:
    """Revoke every live session of a user (password change, deactivation)."""
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
