"""API token pages: a person lists and revokes their own tokens; an admin, anyone's.

Registered on the auth blueprint (and the admin pages on the admin blueprint) when
`referrals.auth.views` is imported. Tokens are issued from the command line
(`flask users token`); a revocation is a POST with the CSRF token, and is audited.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from referrals.admin import bp as admin_bp
from referrals.admin.views import get_user_or_404
from referrals.auth import bp
from referrals.auth.models import ApiToken, Role, User
from referrals.auth.services import api_token_of, api_tokens_of, revoke_api_token
from referrals.extensions import db
from referrals.security import STAFF, allow


def _me() -> User:
    user: User = current_user._get_current_object()
    return user


@bp.get("/account/tokens")
@allow(STAFF)
def api_tokens() -> ResponseReturnValue:
    return _tokens_page(
        _me(), lambda token: url_for("auth.revoke_my_api_token", token_id=token.id), own=True
    )


@bp.post("/account/tokens/<int:token_id>/revoke")
@allow(STAFF)
def revoke_my_api_token(token_id: int) -> ResponseReturnValue:
    return _revoke(_me(), token_id, url_for("auth.api_tokens"))


@admin_bp.get("/users/<int:user_id>/tokens")
@allow(Role.ADMIN)
def user_api_tokens(user_id: int) -> ResponseReturnValue:
    owner = get_user_or_404(user_id)
    return _tokens_page(
        owner,
        lambda token: url_for("admin.revoke_user_api_token", token_id=token.id),
        own=False,
    )


@admin_bp.post("/tokens/<int:token_id>/revoke")
@allow(Role.ADMIN)
def revoke_user_api_token(token_id: int) -> ResponseReturnValue:
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    return _revoke(token.user, token_id, url_for("admin.user_api_tokens", user_id=token.user_id))


def _tokens_page(
    owner: User, revoke_url: Callable[[ApiToken], str], *, own: bool
) -> ResponseReturnValue:
    return render_template(
        "auth/api_tokens.html",
        owner=owner,
        own=own,
        tokens=api_tokens_of(owner),
        revoke_url=revoke_url,
    )


def _revoke(owner: User, token_id: int, back: str) -> ResponseReturnValue:
    token = api_token_of(owner, token_id)
    if token is None:
        abort(404)  # someone else's token is not found from here
    if revoke_api_token(_me(), token):
        db.session.commit()
        flash(f"The token {token.prefix}… has been revoked and no longer works", "success")
    else:
        flash(f"The token {token.prefix}… had already been revoked", "info")
    return redirect(back)
