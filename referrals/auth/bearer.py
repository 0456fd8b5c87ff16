"""Bearer-token authentication for the API: the token, never a cookie, says who is calling."""

from __future__ import annotations

from flask import g, request

from referrals.auth.models import User
from referrals.auth.services import user_for_api_token
from referrals.extensions import login_manager


def authenticate_bearer() -> User | None:
    """Resolve the `Authorization: Bearer` token to its user and make it the current user."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = None
    if scheme.lower() == "bearer" and token.strip():
        user = user_for_api_token(token.strip())
    # Flask-Login reads g._login_user first; setting it keeps any session cookie out of the API.
    if user is not None:
        g._login_user = user
    else:
        g._login_user = login_manager.anonymous_user()
    return user
