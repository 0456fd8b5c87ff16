"""Two-step verification pages: the code step of sign-in, and set-up and management for every
signed-in user. The admin's security page is in `referrals.admin.security_views`; the forms are
in `referrals.auth.forms`."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from referrals.auth import bp, mfa
from referrals.auth.forms import CodeForm, DisableForm, NewCodesForm, SetupCodeForm
from referrals.auth.models import User
from referrals.auth.reauthentication import confirmed, reauthenticated, signed_in_user
from referrals.auth.services import LoginOutcome
from referrals.auth.throttle import Throttled, retry_after, throttled_message
from referrals.extensions import db
from referrals.forms import ConfirmForm
from referrals.security import STAFF, allow, second_sign_in_step

WRONG_CODE = "The code is not correct. Enter the newest code from your app, or a recovery code"
WRONG_SETUP_CODE = (
    "The code is not correct. Check that the time on your phone is right, "
    "then enter the newest code from your app"
)
REQUIRED_FOR_ROLE = "Your role needs two-step verification, so it cannot be turned off"
FEW_RECOVERY_CODES = 3


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


def _setup_page(user: User, form: SetupCodeForm) -> str:
    return render_template(
        "auth/mfa_setup.html",
        form=form,
        qr_code=mfa.qr_code_data_uri(mfa.provisioning_uri(user)),
        secret=mfa.grouped(user.totp_secret or ""),
        required=mfa.role_requires_mfa(user),
        can_change=signed_in_user().mfa_enabled_at is not None,
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
    user = signed_in_user()
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
    user = signed_in_user()
    if ConfirmForm().validate_on_submit() and user.mfa_enabled_at is None:
        mfa.start_enrolment(user)
        db.session.commit()
    return redirect(url_for("auth.mfa_page"))


@bp.post("/account/mfa/confirm")
@allow(STAFF)
def mfa_confirm() -> ResponseReturnValue:
    user = signed_in_user()
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


@bp.post("/account/mfa/disable")
@allow(STAFF)
def mfa_disable() -> ResponseReturnValue:
    user = signed_in_user()
    if user.mfa_enabled_at is None:
        return redirect(url_for("auth.mfa_page"))
    form = DisableForm()
    if form.validate_on_submit():
        if mfa.role_requires_mfa(user):
            form.form_errors.append(REQUIRED_FOR_ROLE)
        elif reauthenticated(user, form.disable_password, form.disable_code):
            mfa.disable(user)
            db.session.commit()
            flash("Two-step verification is off", "success")
            return redirect(url_for("auth.mfa_page"))
    return _manage_page(user, disable_form=form)


@bp.post("/account/mfa/recovery-codes")
@allow(STAFF)
def mfa_recovery_codes() -> ResponseReturnValue:
    user = signed_in_user()
    if user.mfa_enabled_at is None:
        return redirect(url_for("auth.mfa_page"))
    form = NewCodesForm()
    if form.validate_on_submit() and confirmed(user, form.codes_confirmation):
        codes = mfa.regenerate_recovery_codes(user)
        db.session.commit()
        return _recovery_codes_page(codes, first=False)
    return _manage_page(user, codes_form=form)
