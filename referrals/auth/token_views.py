"""API token pages: a person lists and revokes their own tokens; an admin, anyone's.

The admin's pages (`referrals.admin.token_views`) show and revoke tokens the same way. Tokens
are issued from the command line (`flask users token`); a revocation is a POST with the CSRF
token, and is audited.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from referrals.auth import bp
from referrals.auth.models import ApiToken, User
from referrals.auth.reauthentication import signed_in_user
from referrals.auth.services import api_token_of, api_tokens_of, revoke_api_token
from referrals.extensions import db
from referrals.security import STAFF, allow


@bp.get("/account/tokens")
@allow(STAFF)
def api_tokens() -> ResponseReturnValue:
    return tokens_page(
        signed_in_user(),
        lambda token: url_for("auth.revoke_my_api_token", token_id=token.id),
        own=True,
    )


@bp.post("/account/tokens/<int:token_id>/revoke")
@allow(STAFF)
def revoke_my_api_token(token_id: int) -> ResponseReturnValue:
    return revoke_token(signed_in_user(), token_id, url_for("auth.api_tokens"))


def tokens_page(
    owner: User, revoke_url: Callable[[ApiToken], str], *, own: bool
) -> ResponseReturnValue:
    return render_template(
        "auth/api_tokens.html",
        owner=owner,
        own=own,
        tokens=api_tokens_of(owner),
        revoke_url=revoke_url,
    )


def revoke_token(owner: User, token_id: int, back: str) -> ResponseReturnValue:
    token = api_token_of(owner, token_id)
    if token is None:
        abort(404)  # someone else's token is not found from here
    if revoke_api_token(signed_in_user(), token):
        db.session.commit()
        flash(f"The token {token.prefix}… has been revoked and no longer works", "success")
    else:
        flash(f"The token {token.prefix}… had already been revoked", "info")
    return redirect(back)
