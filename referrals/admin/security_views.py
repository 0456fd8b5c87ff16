"""The admin's security page: which roles must use two-step verification, and turning it off
for a user who has lost their phone. Each change asks the admin again for a password and code."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import func, select

from referrals.admin import bp
from referrals.admin.forms import RequiredRolesForm
from referrals.admin.views import get_user_or_404
from referrals.auth import mfa
from referrals.auth.forms import ReauthenticateForm
from referrals.auth.models import Role, User
from referrals.auth.reauthentication import reauthenticated, signed_in_user
from referrals.extensions import db
from referrals.pagination import Page
from referrals.security import allow


def _enrolment_by_role() -> list[dict[str, Any]]:
    rows = db.session.execute(
        select(User.role, func.count(), func.count(User.mfa_enabled_at))
        .where(User.active.is_(True))
        .group_by(User.role)
    ).all()
    counts = {role: (users, enrolled) for role, users, enrolled in rows}
    return [
        {
            "role": role,
            "users": counts.get(role, (0, 0))[0],
            "enrolled": counts.get(role, (0, 0))[1],
        }
        for role in Role
    ]


@bp.route("/security", methods=["GET", "POST"])
@allow(Role.ADMIN)
def security() -> ResponseReturnValue:
    setting = mfa.required_roles_setting()
    form = RequiredRolesForm(data={"roles": sorted(r.value for r in mfa.required_roles())})
    if form.validate_on_submit() and reauthenticated(signed_in_user(), form.password, form.code):
        if request.form.get("action") == "default":
            mfa.set_required_roles(current_user, None)
            message = "Two-step verification now follows the service's configuration"
        else:
            chosen = frozenset(Role(value) for value in form.roles.data or [])
            mfa.set_required_roles(current_user, chosen)
            message = "Saved. People in these roles must set up two-step verification"
        db.session.commit()
        flash(message, "success")
        return redirect(url_for("admin.security"))
    return render_template(
        "auth/mfa_admin_security.html",
        form=form,
        overridden=setting is not None,
        configured=sorted(mfa.configured_required_roles()),
        can_change=signed_in_user().mfa_enabled_at is not None,
        by_role=_enrolment_by_role(),
        enrolled=Page.from_request(
            select(User)
            .where(User.mfa_enabled_at.is_not(None))
            .order_by(func.lower(User.name), User.id)
        ),
        page_has_errors=bool(form.errors),
    )


@bp.route("/users/<int:user_id>/two-step", methods=["GET", "POST"])
@allow(Role.ADMIN)
def reset_mfa(user_id: int) -> ResponseReturnValue:
    user = get_user_or_404(user_id)
    form = ReauthenticateForm()
    if (
        user.mfa_enabled_at is not None
        and form.validate_on_submit()
        and reauthenticated(signed_in_user(), form.password, form.code)
    ):
        mfa.reset(current_user, user)
        db.session.commit()
        flash(f"Two-step verification is off for {user.name}. They have been signed out", "success")
        return redirect(url_for("admin.security"))
    return render_template(
        "auth/mfa_admin_reset.html",
        form=form,
        user=user,
        required=mfa.role_requires_mfa(user),
        can_change=signed_in_user().mfa_enabled_at is not None,
        page_has_errors=bool(form.errors),
    )
