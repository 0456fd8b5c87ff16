"""Two-step verification pages: the code step of sign-in, set-up and management for every
signed-in user, and the admin's security page (which roles must use it, resetting a user).

Registered on the auth blueprint (and the admin pages on the admin blueprint) when
`referrals.auth.views` is imported.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from referrals.admin.forms import ConfirmForm
from referrals.admin.views import bp as admin_bp
from referrals.admin.views import get_user_or_404
from referrals.auth import mfa
from referrals.auth.models import Role, User
from referrals.auth.passwords import MAX_LENGTH
from referrals.auth.services import LoginOutcome
from referrals.auth.throttle import Throttled
from referrals.auth.views import bp, retry_after, throttled_message
from referrals.extensions import db
from referrals.forms import MultiCheckboxField, no_control_characters
from referrals.main.context import NAVIGATION, add_navigation
from referrals.pagination import Page
from referrals.security import STAFF, allow, second_sign_in_step

WRONG_CODE = "The code is not correct. Enter the newest code from your app, or a recovery code"
WRONG_SETUP_CODE = (
    "The code is not correct. Check that the time on your phone is right, "
    "then enter the newest code from your app"
)
NOT_CONFIRMED = "The code or password is not correct"
NOT_REAUTHENTICATED = "The password or the code is not correct. Enter both again"
SET_UP_FIRST = (
    "Turn on two-step verification for your own account first: this change needs a code from it"
)
REQUIRED_FOR_ROLE = "Your role needs two-step verification, so it cannot be turned off"
FEW_RECOVERY_CODES = 3

ADMINS = frozenset({Role.ADMIN})


def _navigation_position() -> int:
    endpoints = [endpoint for _, endpoint, _ in NAVIGATION]
    return endpoints.index("admin.audit_log") if "admin.audit_log" in endpoints else -1


add_navigation("Security", "admin.security", ADMINS, _navigation_position())


class CodeForm(FlaskForm):
    code = StringField(
        "Code",
        validators=[
            DataRequired("Enter the code"),
            Length(max=mfa.CODE_MAX),
            no_control_characters,
        ],
    )


class SetupCodeForm(FlaskForm):
    code = StringField(
        "Code from the app",
        validators=[
            DataRequired("Enter the 6-digit code from your app"),
            Length(max=mfa.CODE_MAX),
            no_control_characters,
        ],
    )


def _code_or_password() -> Any:
    # Only compared, never stored: any password the policy accepted must be usable here.
    return PasswordField(
        "Code from your app, or your password",
        validators=[
            DataRequired("Enter a code from your app, or your password"),
            Length(max=MAX_LENGTH),
        ],
    )


def _password() -> Any:
    return PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password"), Length(max=MAX_LENGTH)],
    )


def _current_code() -> Any:
    return StringField(
        "Code from your authenticator app",
        validators=[
            DataRequired("Enter the 6-digit code from your app"),
            Length(max=mfa.CODE_MAX),
            no_control_characters,
        ],
    )


class ReauthenticateForm(FlaskForm):
    """A security change asks again for the password and a current code (see mfa.reauthenticate)."""

    password = _password()
    code = _current_code()


class DisableForm(FlaskForm):
    disable_password = _password()
    disable_code = _current_code()


class NewCodesForm(FlaskForm):
    codes_confirmation = _code_or_password()


class RequiredRolesForm(ReauthenticateForm):
    roles = MultiCheckboxField(
        "Roles that must use two-step verification",
        choices=[(role.value, role.label) for role in Role],
    )


# Sign-in -------------------------------------------------------------------------------------


@bp.route("/sign-in/code", methods=["GET", "POST"])
@second_sign_in_step
def login_code() -> ResponseReturnValue:
    challenge = mfa.current_challenge()
    if challenge is None:  # enforce_access has already sent such a browser back to sign in
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if form.validate_on_submit():
        outcome = mfa.complete_challenge(challenge, form.code.data or "")
        db.session.commit()
        if outcome is LoginOutcome.OK:
            left = mfa.recovery_codes_left(challenge.user)
            if left <= FEW_RECOVERY_CODES:
                flash(
                    f"You have {left} recovery code{'s' if left != 1 else ''} left. "
                    "Create new ones on your two-step verification page",
                    "info",
                )
            return redirect(challenge.next_url or url_for("main.home"))
        if isinstance(outcome, Throttled):
            form.form_errors.append(throttled_message(outcome))
            page = render_template("auth/mfa_code.html", form=form, throttled=True)
            return page, 429, retry_after(outcome)
        form.code.errors = [WRONG_CODE]
        form.code.data = ""
    return render_template("auth/mfa_code.html", form=form, page_has_errors=bool(form.errors))


# Set-up and management -----------------------------------------------------------------------


def _me() -> User:
    user: User = current_user._get_current_object()
    return user


def _setup_page(user: User, form: SetupCodeForm) -> str:
    return render_template(
        "auth/mfa_setup.html",
        form=form,
        qr_code=mfa.qr_code_data_uri(mfa.provisioning_uri(user)),
        secret=mfa.grouped(user.totp_secret or ""),
        required=mfa.role_requires_mfa(user),
        can_change=_me().mfa_enabled_at is not None,
        page_has_errors=bool(form.errors),
    )


def _manage_page(
    user: User, disable_form: DisableForm | None = None, codes_form: NewCodesForm | None = None
) -> str:
    disable_form = disable_form or DisableForm(formdata=None)
    codes_form = codes_form or NewCodesForm(formdata=None)
    return render_template(
        "auth/mfa_manage.html",
        disable_form=disable_form,
        codes_form=codes_form,
        codes_left=mfa.recovery_codes_left(user),
        required=mfa.role_requires_mfa(user),
        page_has_errors=bool(disable_form.errors or codes_form.errors),
    )


@bp.get("/account/mfa")
@allow(STAFF)
def mfa_page() -> ResponseReturnValue:
    user = _me()
    if user.mfa_enabled_at is not None:
        return _manage_page(user)
    if user.totp_secret is None:
        return render_template(
            "auth/mfa_start.html", form=ConfirmForm(), required=mfa.role_requires_mfa(user)
        )
    return _setup_page(user, SetupCodeForm(formdata=None))


@bp.post("/account/mfa/start")
@allow(STAFF)
def mfa_start() -> ResponseReturnValue:
    user = _me()
    if ConfirmForm().validate_on_submit() and user.mfa_enabled_at is None:
        mfa.start_enrolment(user)
        db.session.commit()
    return redirect(url_for("auth.mfa_page"))


@bp.post("/account/mfa/confirm")
@allow(STAFF)
def mfa_confirm() -> ResponseReturnValue:
    user = _me()
    if user.mfa_enabled_at is not None or user.totp_secret is None:
        return redirect(url_for("auth.mfa_page"))
    form = SetupCodeForm()
    if form.validate_on_submit():
        codes = mfa.confirm_enrolment(user, form.code.data or "")
        if codes is not None:
            db.session.commit()
            return _recovery_codes_page(codes, first=True)
        form.code.errors = [WRONG_SETUP_CODE]
        form.code.data = ""
    return _setup_page(user, form)


def _recovery_codes_page(codes: list[str], *, first: bool) -> ResponseReturnValue:
    # Shown once, in the answer to the POST that made them: they are never stored in clear.
    return render_template("auth/mfa_recovery_codes.html", codes=codes, first=first)


def _reauthenticated(user: User, password: Any, code: Any) -> bool:
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


def _confirmed(user: User, field: Any) -> bool:
    """Check the code or password; a refusal is committed so that it counts."""
    outcome = mfa.confirm_identity(user, field.data or "")
    db.session.commit()
    if outcome is LoginOutcome.OK:
        return True
    field.errors = [throttled_message(outcome) if isinstance(outcome, Throttled) else NOT_CONFIRMED]
    return False


@bp.post("/account/mfa/disable")
@allow(STAFF)
def mfa_disable() -> ResponseReturnValue:
    user = _me()
    if user.mfa_enabled_at is None:
        return redirect(url_for("auth.mfa_page"))
    form = DisableForm()
    if form.validate_on_submit():
        if mfa.role_requires_mfa(user):
            form.form_errors.append(REQUIRED_FOR_ROLE)
        elif _reauthenticated(user, form.disable_password, form.disable_code):
            mfa.disable(user)
            db.session.commit()
            flash("Two-step verification is off", "success")
            return redirect(url_for("auth.mfa_page"))
    return _manage_page(user, disable_form=form)


@bp.post("/account/mfa/recovery-codes")
@allow(STAFF)
def mfa_recovery_codes() -> ResponseReturnValue:
    user = _me()
    if user.mfa_enabled_at is None:
        return redirect(url_for("auth.mfa_page"))
    form = NewCodesForm()
    if form.validate_on_submit() and _confirmed(user, form.codes_confirmation):
        codes = mfa.regenerate_recovery_codes(user)
        db.session.commit()
        return _recovery_codes_page(codes, first=False)
    return _manage_page(user, codes_form=form)


# Admin ---------------------------------------------------------------------------------------


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


@admin_bp.route("/security", methods=["GET", "POST"])
@allow(Role.ADMIN)
def security() -> ResponseReturnValue:
    setting = mfa.required_roles_setting()
    form = RequiredRolesForm(data={"roles": sorted(r.value for r in mfa.required_roles())})
    if form.validate_on_submit() and _reauthenticated(_me(), form.password, form.code):
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
        can_change=_me().mfa_enabled_at is not None,
        by_role=_enrolment_by_role(),
        enrolled=Page.from_request(
            select(User)
            .where(User.mfa_enabled_at.is_not(None))
            .order_by(func.lower(User.name), User.id)
        ),
        page_has_errors=bool(form.errors),
    )


@admin_bp.route("/users/<int:user_id>/two-step", methods=["GET", "POST"])
@allow(Role.ADMIN)
def reset_mfa(user_id: int) -> ResponseReturnValue:
    user = get_user_or_404(user_id)
    form = ReauthenticateForm()
    if (
        user.mfa_enabled_at is not None
        and form.validate_on_submit()
        and _reauthenticated(_me(), form.password, form.code)
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
        can_change=_me().mfa_enabled_at is not None,
        page_has_errors=bool(form.errors),
    )
