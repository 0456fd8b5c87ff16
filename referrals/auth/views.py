"""Sign in, sign out and change password; two-step verification is in `mfa_views`, API
tokens in `token_views`. The routes are on the area's `bp` (`referrals.auth`)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from referrals.auth import bp
from referrals.auth.forms import ChangePasswordForm, LoginForm
from referrals.auth.passwords import verify_password
from referrals.auth.services import LoginOutcome, set_password, sign_in, sign_out
from referrals.auth.throttle import Throttled, retry_after, throttled_message
from referrals.extensions import db
from referrals.security import STAFF, allow, public, safe_next_url

GENERIC_LOGIN_ERROR = "Enter a correct email address and password"


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def login() -> ResponseReturnValue:
    next_url = safe_next_url(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url or url_for("main.home"))
    form = LoginForm()
    if form.validate_on_submit():
        outcome, _user = sign_in(form.email.data or "", form.password.data or "", next_url)
        db.session.commit()
        if outcome is LoginOutcome.OK:
            return redirect(next_url or url_for("main.home"))
        if outcome is LoginOutcome.CODE_NEEDED:
            return redirect(url_for("auth.login_code"))
        form.password.data = ""
        if isinstance(outcome, Throttled):
            form.form_errors.append(throttled_message(outcome))
            page = render_template("auth/login.html", form=form, page_has_errors=True)
            return page, 429, retry_after(outcome)
        # One message for unknown account, wrong password and inactive account alike.
        form.form_errors.append(GENERIC_LOGIN_ERROR)
        return render_template("auth/login.html", form=form, page_has_errors=True), 200
    return render_template("auth/login.html", form=form, page_has_errors=bool(form.errors))


@bp.post("/sign-out")
@allow(STAFF)
def logout() -> ResponseReturnValue:
    sign_out(current_user)
    db.session.commit()
    flash("You have signed out", "success")
    response = redirect(url_for("auth.login"))
    # Registers an artist's phone kept for use without a connection go with the sign-in.
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.route("/account/password", methods=["GET", "POST"])
@allow(STAFF)
def change_password() -> ResponseReturnValue:
    form = ChangePasswordForm(user=current_user)
    if form.validate_on_submit():
        if not verify_password(current_user.password_hash, form.current_password.data or ""):
            form.current_password.errors = ["Your current password is not correct"]
        else:
            user = current_user._get_current_object()
            set_password(user, user, form.new_password.data or "")
            sign_out(user)
            db.session.commit()
            flash("Your password has been changed. Sign in with your new password", "success")
            return redirect(url_for("auth.login"))
    return render_template(
        "auth/change_password.html", form=form, page_has_errors=bool(form.errors)
    )
