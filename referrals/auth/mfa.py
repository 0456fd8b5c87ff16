"""Two-step verification: authenticator-app codes (TOTP), one-time recovery codes, the sign-in
challenge between password and code, and which roles must use it.

TOTP follows RFC 6238 as authenticator apps expect it (SHA-1, 6 digits, 30 seconds); a code is
accepted one step either side of now, and never twice: the last accepted step is stored and
only a later one passes, claimed with a conditional UPDATE so two requests racing with the same
code cannot both win. Recovery codes carry about 79 bits of randomness and only their SHA-256
is stored. The secret itself is stored as the app needs it (base32), and never shown again
after set-up.

After a correct password, a user with two-step verification gets no session: the signed session
cookie holds a challenge (user, time, password version) that lasts 5 minutes, and only a right
code turns it into a session. Wrong codes count towards the same throttle as wrong passwords,
and also per account from any address (`auth.throttle`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
import segno
from flask import current_app, flash, g, has_request_context, session
from sqlalchemy import delete, func, or_, select, update

from referrals.audit import record
from referrals.auth import throttle
from referrals.auth.models import (
    FailedStep,
    RecoveryCode,
    Role,
    SecuritySetting,
    User,
    UserSession,
)
from referrals.auth.passwords import verify_password
from referrals.auth.services import LoginOutcome, complete_sign_in
from referrals.auth.sessions import (
    SETTINGS_PRELOADED,
    current_session_row,
    revoke_all_sessions,
)
from referrals.auth.throttle import Throttled
from referrals.db import utcnow
from referrals.extensions import db

TOTP_DIGITS = 6
TOTP_INTERVAL = 30
VALID_WINDOW = 1  # steps either side of now: allows for a slow typist or a drifting phone clock
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_LENGTH = 16
# What a code box takes: a TOTP or recovery code, with any spaces or hyphens people type.
CODE_MAX = 40
# No 0/o, 1/i/l: recovery codes are read off paper.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CHALLENGE_KEY = "mfa_challenge"
CHALLENGE_LIFETIME = timedelta(minutes=5)
REQUIRED_ROLES_SETTING = "mfa_required_roles"

_TOTP_FORMAT = re.compile(r"[0-9]{6}")
_RECOVERY_FORMAT = re.compile(f"[{RECOVERY_ALPHABET}]{{{RECOVERY_CODE_LENGTH}}}")


class Method:
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"


# Codes ---------------------------------------------------------------------------------------


def normalise_code(code: str) -> str:
    """Drop the spaces and hyphens people type or paste, and ignore case."""
    return re.sub(r"[\s-]", "", code or "").lower()


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within the window whose code is `code`, if any."""
    if not _TOTP_FORMAT.fullmatch(code):
        return None
    totp = _totp(secret)
    current = int(now.timestamp()) // TOTP_INTERVAL
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        # Compare every step (no early exit) in constant time.
        if secrets.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def accept_totp(user: User, code: str) -> bool:
    """Check an authenticator code and use up its time step, so it cannot be used again."""
    if not user.totp_secret:
        return False
    step = matching_step(user.totp_secret, normalise_code(code), utcnow())
    if step is None:
        return False
    claimed = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _recovery_digest(user_id: int, code: str) -> str:
    return hashlib.sha256(f"{user_id}:{code}".encode()).hexdigest()


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4))


def replace_recovery_codes(user: User) -> list[str]:
    """Issue a fresh set of recovery codes, voiding the old ones. Returns them, to show once."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(
        RecoveryCode(user_id=user.id, code_hash=_recovery_digest(user.id, normalise_code(code)))
        for code in codes
    )
    db.session.flush()
    return codes


def accept_recovery_code(user: User, code: str) -> bool:
    """Use up one recovery code; a used or unknown code is refused."""
    code = normalise_code(code)
    if not _RECOVERY_FORMAT.fullmatch(code):
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _recovery_digest(user.id, code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(used.rowcount)  # type: ignore[attr-defined]


def recovery_codes_left(user: User) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        )
        or 0
    )


# Set-up --------------------------------------------------------------------------------------


def start_enrolment(user: User) -> str:
    """Give the user a new secret to add to their app. It counts only once confirmed."""
    if user.mfa_enabled_at is not None:
        raise ValueError("two-step verification is already on")
    user.totp_secret = pyotp.random_base32()
    user.totp_last_step = None
    record(user, "mfa.setup_started", user)
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    return _totp(user.totp_secret or "").provisioning_uri(
        name=user.email, issuer_name=current_app.config["SERVICE_NAME"]
    )


def qr_code_data_uri(text: str) -> str:
    """An SVG QR code as a data: URI for an <img> (the CSP allows data: images only)."""
    buffer = io.BytesIO()
    # A viewBox and no fixed size, so the <img> can size it; a white quiet zone for scanning.
    segno.make(text, error="m").save(
        buffer, kind="svg", border=4, light="#fff", omitsize=True, xmldecl=False, svgclass=None
    )
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def grouped(secret: str, size: int = 4) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + size] for i in range(0, len(secret), size))


def confirm_enrolment(user: User, code: str) -> list[str] | None:
    """Turn two-step verification on if `code` comes from the new secret.

    Returns the recovery codes (to show once), or None when the code is wrong. Other sessions
    of the user, begun with the password alone, are ended.
    """
    if user.mfa_enabled_at is not None or not accept_totp(user, code):
        return None
    user.mfa_enabled_at = utcnow()
    codes = replace_recovery_codes(user)
    _end_other_sessions(user)
    record(user, "mfa.enabled", user)
    return codes


def regenerate_recovery_codes(user: User) -> list[str]:
    codes = replace_recovery_codes(user)
    record(user, "mfa.recovery_codes_replaced", user)
    return codes


def disable(user: User) -> None:
    """The user turns two-step verification off (the view has checked it is allowed)."""
    was_on_since = _on_since(user)
    _clear(user)
    _end_other_sessions(user)
    record(user, "mfa.disabled", user, old={"on_since": was_on_since}, new=None)


def reset(actor: Any, user: User) -> None:
    """An admin turns it off for someone who lost their phone and codes; they are signed out."""
    was_on_since = _on_since(user)
    _clear(user)
    revoke_all_sessions(user)
    record(actor, "mfa.reset", user, old={"on_since": was_on_since}, new=None)


def _on_since(user: User) -> str | None:
    return user.mfa_enabled_at.isoformat() if user.mfa_enabled_at else None


def _clear(user: User) -> None:
    user.totp_secret = None
    user.totp_last_step = None
    user.mfa_enabled_at = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))


def _end_other_sessions(user: User) -> None:
    current = current_session_row()
    query = update(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None)
    )
    if current is not None:
        query = query.where(UserSession.id != current.id)
    db.session.execute(query.values(revoked_at=utcnow()))


def reauthenticate(user: User, password: str, code: str) -> LoginOutcome | Throttled:
    """Before a change to security (who must use two-step verification, resetting someone's,
    or turning one's own off): the password and a current code from the app, both.

    A code is used up only with the right password. Failures count towards the sign-in
    throttle as wrong codes, so a left-open session cannot be used to guess either.
    """
    throttled = throttle.check(user.email, step=FailedStep.CODE)
    if throttled is not None:
        record(user, "mfa.throttled", user)
        return throttled
    valid = verify_password(user.password_hash, password) and accept_totp(user, code)
    if not valid:
        throttle.record_failure(user.email, FailedStep.CODE)
        record(user, "mfa.reauthentication_failed", user)
        return LoginOutcome.REFUSED
    return LoginOutcome.OK


def confirm_identity(user: User, code_or_password: str) -> LoginOutcome | Throttled:
    """Before a change to two-step verification: a current code, or the password.

    Failures count towards the sign-in throttle as wrong codes, so a left-open session cannot
    be used to guess either.
    """
    throttled = throttle.check(user.email, step=FailedStep.CODE)
    if throttled is not None:
        record(user, "mfa.throttled", user)
        return throttled
    code = normalise_code(code_or_password)
    if _TOTP_FORMAT.fullmatch(code) and user.totp_secret:
        valid = accept_totp(user, code)
    else:
        valid = verify_password(user.password_hash, code_or_password)
    if not valid:
        throttle.record_failure(user.email, FailedStep.CODE)
        record(user, "mfa.confirmation_failed", user)
        return LoginOutcome.REFUSED
    return LoginOutcome.OK


# The sign-in challenge -----------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    user: User
    next_url: str | None


def _password_version(user: User) -> str:
    # A password reset while the challenge is open voids it.
    return user.password_changed_at.isoformat() if user.password_changed_at else ""


def begin_challenge(user: User, next_url: str | None) -> None:
    """The password was right: hold the sign-in open for the code, for 5 minutes."""
    session.clear()
    session[CHALLENGE_KEY] = {
        "user_id": user.id,
        "issued_at": utcnow().timestamp(),
        "password": _password_version(user),
        "next": next_url,
    }
    record(None, "mfa.challenged", user)


def current_challenge() -> Challenge | None:
    """The challenge in this browser's session, if it is still open."""
    data = session.get(CHALLENGE_KEY)
    if not isinstance(data, dict):
        return None
    try:
        user_id = int(data["user_id"])
        age = utcnow().timestamp() - float(data["issued_at"])
    except (KeyError, TypeError, ValueError):
        return None
    if not 0 <= age <= CHALLENGE_LIFETIME.total_seconds():
        return None
    user = db.session.get(User, user_id)
    if (
        user is None
        or not user.active
        or not user.organisation.active
        or user.mfa_enabled_at is None
        or data.get("password") != _password_version(user)
    ):
        return None
    next_url = data.get("next")
    return Challenge(user, next_url if isinstance(next_url, str) else None)


def end_challenge() -> None:
    session.pop(CHALLENGE_KEY, None)


def challenge_is_open() -> bool:
    """Whether this browser may see the code step. A stale challenge is dropped, with a note."""
    if current_challenge() is not None:
        return True
    if CHALLENGE_KEY in session:
        end_challenge()
        flash("Your sign-in timed out. Enter your email address and password again", "info")
    return False


def complete_challenge(challenge: Challenge, code: str) -> LoginOutcome | Throttled:
    """Check the second step. A right code (or unused recovery code) signs the user in."""
    user = challenge.user
    throttled = throttle.check(user.email, step=FailedStep.CODE)
    if throttled is not None:
        end_challenge()
        record(None, "mfa.throttled", user)
        return throttled
    if accept_totp(user, code):
        method = Method.TOTP
    elif accept_recovery_code(user, code):
        method = Method.RECOVERY_CODE
        record(user, "mfa.recovery_code_used", user, left=recovery_codes_left(user))
    else:
        throttle.record_failure(user.email, FailedStep.CODE)
        record(None, "mfa.failed", user)
        return LoginOutcome.REFUSED
    complete_sign_in(user, second_factor=method)
    return LoginOutcome.OK


# Which roles must use it ---------------------------------------------------------------------


def configured_required_roles() -> frozenset[Role]:
    return frozenset(Role(name) for name in current_app.config["MFA_REQUIRED_ROLES"])


def required_roles_setting() -> SecuritySetting | None:
    return db.session.get(SecuritySetting, REQUIRED_ROLES_SETTING)


def required_roles() -> frozenset[Role]:
    """The admin's choice if they made one, otherwise the configuration.

    In a signed-in request the choice was read with the user (`auth.sessions`), so checking it
    on every page costs no query of its own.
    """
    if has_request_context() and SETTINGS_PRELOADED in g:
        chosen = g.get(SETTINGS_PRELOADED)
    else:
        setting = required_roles_setting()
        chosen = None if setting is None else setting.value
    if chosen is None:
        return configured_required_roles()
    known = {role.value for role in Role}
    return frozenset(Role(name) for name in chosen if name in known)


def _required_roles_now() -> dict[str, Any]:
    """The roles that must use it, and whether an admin chose them or the configuration did."""
    return {
        "roles": sorted(role.value for role in required_roles()),
        "source": "configuration" if required_roles_setting() is None else "admin",
    }


def set_required_roles(actor: Any, roles: frozenset[Role] | None) -> None:
    """Store the admin's choice, or (None) go back to the configured default. The audit entry
    holds the roles before and after."""
    if has_request_context():
        g.pop(SETTINGS_PRELOADED, None)  # read afresh from here on
    old = _required_roles_now()
    setting = required_roles_setting()
    if roles is None:
        if setting is not None:
            db.session.delete(setting)
            db.session.flush()
    else:
        names = sorted(role.value for role in roles)
        if setting is None:
            setting = SecuritySetting(key=REQUIRED_ROLES_SETTING, value=names)
            db.session.add(setting)
        setting.value = names
        setting.updated_by_id = getattr(actor, "id", None)
        setting.updated_at = utcnow()
        db.session.flush()
    record(
        actor,
        "mfa.required_roles_changed",
        object_type="security_setting",
        old=old,
        new=_required_roles_now(),
    )


def role_requires_mfa(user: Any) -> bool:
    return getattr(user, "role", None) in required_roles()


def enrolment_due(user: Any) -> bool:
    """A signed-in user whose role requires two-step verification and who has not set it up."""
    return getattr(user, "mfa_enabled_at", True) is None and role_requires_mfa(user)
