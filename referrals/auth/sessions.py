"""Server-side sessions: the signed cookie carries a random token whose row can be revoked.

Flask's cookie session cannot be revoked on its own, so every signed-in browser has a
`UserSession` row. Logout, password change and deactivation revoke rows; a replayed old cookie
then finds a revoked (or missing) row and is treated as signed out. Idle and absolute timeouts
are enforced here too.

The last-seen time is written as the request's first unit of work (`refresh_last_seen`, the
first `before_request` hook), before the request holds any lock: on SQLite a writing request
holds the database write lock from its first statement, so a write on a second connection later
in the request would wait on the request's own lock until the busy timeout and fail. Doing it
first, and committing it at once, also keeps it when the rest of the request is rolled back (a
form refused for its input still shows the person was active). It is best effort: when another
process holds the write lock it is skipped at once rather than waited for (`touch_session`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime
from functools import cache
from typing import Any

from flask import current_app, g, request, session
from flask_login import current_user
from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from referrals.auth.models import SecuritySetting, User, UserSession
from referrals.db import is_lock_timeout, short_write, utcnow
from referrals.extensions import db
from referrals.notifications.services import unread_count_of

log = logging.getLogger(__name__)

SESSION_KEY = "sid"
_TOUCH_DUE = "session_touch_due"
# Set by the user loader: the request's identity query also read the roles an admin chose to
# require two-step verification (None: no choice made; auth.mfa), and the unread message count
# as the request began (main.context shows it on pages that change nothing).
SETTINGS_PRELOADED = "security_settings_preloaded"
UNREAD_AT_START = "unread_message_count"


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


@cache
def _identity_statement() -> Select[Any]:
    """The per-request identity statement (see `load_user_for_session`), built once: only the
    session token's digest changes between requests."""
    from referrals.auth.mfa import REQUIRED_ROLES_SETTING  # mfa builds on this module

    return (
        select(
            UserSession,
            User,
            SecuritySetting.value.label("required_roles"),
            unread_count_of(User).label("unread"),
        )
        .join(UserSession.user)
        .join(User.organisation)
        .outerjoin(SecuritySetting, SecuritySetting.key == REQUIRED_ROLES_SETTING)
        .where(UserSession.token_hash == bindparam("token_hash"))
        .options(contains_eager(User.organisation))
    )


def load_user_for_session(user_id: str) -> User | None:
    """Flask-Login's user loader: only a live, unrevoked session row yields its user.

    One statement loads what every page needs about who is asking: the session row, the user
    with their organisation, the two-step verification settings and the unread message count.
    """
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None
    found = db.session.execute(_identity_statement(), {"token_hash": _digest(token)}).first()
    if found is None:
        return None
    row, user, required_roles, unread = found
    if str(row.user_id) != user_id:
        return None
    now = utcnow()
    if session_expired(row, now) or not user.active:
        return None
    g.setdefault(SETTINGS_PRELOADED, required_roles)
    g.setdefault(UNREAD_AT_START, unread)
    if now - row.last_seen_at > current_app.config["SESSION_TOUCH_INTERVAL"]:
        g.setdefault(_TOUCH_DUE, row.id)
    return user


def refresh_last_seen() -> None:
    """Load the signed-in user first and, when due, record that they are still here.

    Runs before any other work of the request, so there is nothing of the request's own to
    commit yet: the read that loaded the session ends, and the update runs as a transaction
    that starts with its write (on SQLite it waits for other writers, never on itself).
    """
    if SESSION_KEY not in session or request.endpoint == "static":
        return
    current_user._get_current_object()  # runs the user loader, which marks a due refresh
    row_id = g.pop(_TOUCH_DUE, None)
    if row_id is None:
        return
    # The user and organisation just loaded stay loaded through this commit (nothing of theirs
    # changes), so the page does not read them again lazily.
    orm = db.session()
    expiring = orm.expire_on_commit
    orm.expire_on_commit = False
    try:
        db.session.commit()
    finally:
        orm.expire_on_commit = expiring
    written_at = touch_session(row_id)
    loaded = orm.identity_map.get(identity_key(UserSession, row_id))
    if written_at is not None and loaded is not None:  # as written, without reading it back
        set_committed_value(loaded, "last_seen_at", written_at)


def touch_session(row_id: int) -> datetime | None:
    """Write a session's last-seen time if the write lock can be had at once (the time
    written), else skip it (None).

    Best effort: a page never waits behind another writer (a long job or command) for it, and
    the next request after the touch interval tries again. Skipping costs nothing while the
    writer holds the lock for less than the idle timeout less the touch interval. Written on a
    short connection of its own; the request's session has committed and holds no lock.
    """
    wait_ms = int(current_app.config["BEST_EFFORT_WRITE_WAIT_MS"])
    now = utcnow()
    try:
        with short_write(db.engine, wait_ms) as connection:
            connection.execute(
                update(UserSession).where(UserSession.id == row_id).values(last_seen_at=now)
            )
    except DBAPIError as error:
        if not is_lock_timeout(error):
            raise
        log.info("session last-seen time not written: the database is busy")
        return None
    return now


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
