"""Sign-in and password forms. Forms validate; services write."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from referrals.auth import mfa
from referrals.auth.models import TOKEN_NAME_MAX
from referrals.auth.passwords import MAX_LENGTH, password_problem
from referrals.forms import no_control_characters
from referrals.text import EMAIL_MAX


class LoginForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=[
            DataRequired("Enter your email address"),
            Length(max=EMAIL_MAX),
            no_control_characters,
        ],
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Enter your password"),
            Length(max=MAX_LENGTH),
            no_control_characters,
        ],
    )


class NewPasswordMixin:
    """A new password checked against the policy (length, common, guessable)."""

    def policy_context(self) -> dict[str, str]:
        return {}

    def validate_new_password(self, field: Any) -> None:
        problem = password_problem(field.data or "", **self.policy_context())
        if problem:
            raise ValidationError(problem)


class ChangePasswordForm(NewPasswordMixin, FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired("Enter your current password")]
    )
    new_password = PasswordField("New password", validators=[DataRequired("Enter a new password")])
    confirm_password = PasswordField(
        "Confirm new password",
        validators=[
            DataRequired("Enter the new password again"),
            EqualTo("new_password", "The passwords do not match"),
        ],
    )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._user = user

    def policy_context(self) -> dict[str, str]:
        if self._user is None:
            return {}
        return {"email": self._user.email, "name": self._user.name}


class TokenNameForm(FlaskForm):
    name = StringField("Token name", validators=[Length(max=TOKEN_NAME_MAX)])


# Two-step verification ----------------------------------------------------------------------------


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
