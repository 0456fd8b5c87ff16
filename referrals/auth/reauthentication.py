"""Asking again before a security change: the user's own two-step verification pages and
the admin's security pages both check the password and a current code this way. A refusal is
committed, so that it counts towards the sign-in throttle."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from referrals.auth import mfa
from referrals.auth.models import User
from referrals.auth.services import LoginOutcome
from referrals.auth.throttle import Throttled, throttled_message
from referrals.extensions import db

NOT_CONFIRMED = "The code or password is not correct"
NOT_REAUTHENTICATED = "The password or the code is not correct. Enter both again"
SET_UP_FIRST = (
    "Turn on two-step verification for your own account first: this change needs a code from it"
)


def signed_in_user() -> User:
    """The signed-in user as a `User` (not the proxy)."""
    user: User = current_user._get_current_object()
    return user


def reauthenticated(user: User, password: Any, code: Any) -> bool:
    """Check the password and a current code; a refusal is committed so that it counts."""
    if user.mfa_enabled_at is None:
        code.errors = [SET_UP_FIRST]
        return False
    outcome = mfa.reauthenticate(user, password.data or "", code.data or "")
    db.session.commit()
    if outcome is LoginOutcome.OK:
        return True
    code.errors = [
        throttled_message(outcome) if isinstance(outcome, Throttled) else NOT_REAUTHENTICATED
    ]
    code.data = ""
    return False


def confirmed(user: User, field: Any) -> bool:
    """Check the code or password; a refusal is committed so that it counts."""
    outcome = mfa.confirm_identity(user, field.data or "")
    db.session.commit()
    if outcome is LoginOutcome.OK:
        return True
    field.errors = [throttled_message(outcome) if isinstance(outcome, Throttled) else NOT_CONFIRMED]
    return False
