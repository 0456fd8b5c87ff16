"""An admin's view of anyone's API tokens, revoked the same way people revoke their own
(`referrals.auth.token_views`)."""

from __future__ import annotations

from flask import abort, url_for
from flask.typing import ResponseReturnValue

from referrals.admin import bp
from referrals.admin.views import get_user_or_404
from referrals.auth.models import ApiToken, Role
from referrals.auth.token_views import revoke_token, tokens_page
from referrals.extensions import db
from referrals.security import allow


@bp.get("/users/<int:user_id>/tokens")
@allow(Role.ADMIN)
def user_api_tokens(user_id: int) -> ResponseReturnValue:
    owner = get_user_or_404(user_id)
    return tokens_page(
        owner,
        lambda token: url_for("admin.revoke_user_api_token", token_id=token.id),
        own=False,
    )


@bp.post("/tokens/<int:token_id>/revoke")
@allow(Role.ADMIN)
def revoke_user_api_token(token_id: int) -> ResponseReturnValue:
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    return revoke_token(
        token.user, token_id, url_for("admin.user_api_tokens", user_id=token.user_id)
    )
