"""Admin page to pseudonymise or erase one person's record on request. Admins only.

Registered on the admin blueprint. The choice and its reason go to `referrals.retention`, which
keeps the figures intact and writes the audit entry.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length

from referrals.admin import bp
from referrals.audit import record_now
from referrals.auth.models import Role
from referrals.erasures import erase_and_remember
from referrals.extensions import db
from referrals.intake.models import Patient
from referrals.retention import REASON_MAX, Mode, pseudonymise_patient
from referrals.security import allow


class ErasePersonForm(FlaskForm):
    mode = RadioField(
        "What should happen to this person's record?",
        choices=[
            (Mode.PSEUDONYMISE.value, "Pseudonymise it"),
            (Mode.ERASE.value, "Erase it"),
        ],
        validators=[InputRequired(message="Choose whether to pseudonymise or erase the record")],
    )
    reason = TextAreaField(
        "Reason",
        validators=[
            DataRequired(message="Give a reason, such as the date and reference of the request"),
            Length(max=REASON_MAX, message=f"Reason must be {REASON_MAX} characters or fewer"),
        ],
    )


@bp.route("/people/<int:patient_id>/erase", methods=["GET", "POST"], endpoint="erase_person")
@allow(Role.ADMIN)
def erase_person(patient_id: int) -> ResponseReturnValue:
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        abort(404)
    form = ErasePersonForm()
    if form.validate_on_submit():
        mode = Mode(form.mode.data)
        remove = erase_and_remember if mode is Mode.ERASE else pseudonymise_patient
        remove(current_user, patient, form.reason.data or "")
        db.session.commit()
        done = "erased" if mode is Mode.ERASE else "pseudonymised"
        flash(f"The person's record has been {done}. Every return made is unchanged", "success")
        return redirect(url_for("admin.erase_person", patient_id=patient.id))
    if request.method == "GET":
        record_now(current_user, "patient.viewed", patient, via="erase_page")
    referrals = list(patient.referrals)
    return render_template(
        "admin/erase_person.html",
        form=form,
        patient=patient,
        referrals=referrals,
        open_referrals=[r for r in referrals if r.is_open],
        page_has_errors=bool(form.errors),
    )
