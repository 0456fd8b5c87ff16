"""Admin pages: who has seen this person, on screen and as CSV for a subject access request.

Registered on the admin blueprint. Both are person-level pages: each is itself audited, so the
history shows who looked at it.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from referrals.admin import bp
from referrals.admin.access_history import (
    entries_page,
    history_csv,
    history_query,
    lines,
    with_actors,
)
from referrals.admin.forms import DateRangeFilterForm
from referrals.audit import record_now
from referrals.auth.models import Role
from referrals.exports import send_bytes
from referrals.extensions import db
from referrals.intake.models import Patient
from referrals.security import allow

PER_PAGE = 50


def _patient_or_404(patient_id: int) -> Patient:
    patient = db.session.get(Patient, patient_id)
    if patient is None:
        abort(404)
    return patient


def _recorded(actor: Any, action: str, patient: Patient, filters: DateRangeFilterForm) -> None:
    """Audit the view before the history is read, so that it lists itself: the read snapshot
    the look-up of the person began (SQLite) is ended, to see the entry just written."""
    record_now(actor, action, patient, **filters.selected())
    db.session.commit()


@bp.get("/people/<int:patient_id>/access", endpoint="person_access")
@allow(Role.ADMIN)
def person_access(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    filters = DateRangeFilterForm(request.args)
    _recorded(current_user, "patient.access_history_viewed", patient, filters)
    page = None
    if filters.validate():
        query = history_query(patient.id, filters.since.data, filters.until.data)
        page = entries_page(query, per_page=PER_PAGE)
        page.items = lines(page.items)
    return render_template(
        "admin/person_access.html",
        patient=patient,
        page=page,
        filters=filters,
        referrals=list(patient.referrals),
        page_has_errors=page is None,
    )


@bp.get("/people/<int:patient_id>/access.csv", endpoint="person_access_csv")
@allow(Role.ADMIN)
def person_access_csv(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    filters = DateRangeFilterForm(request.args)
    if not filters.validate():
        args: dict[str, Any] = request.args.to_dict()
        return redirect(url_for("admin.person_access", patient_id=patient.id, **args))
    _recorded(current_user, "patient.access_history_exported", patient, filters)
    since, until = filters.since.data, filters.until.data
    history = lines(db.session.execute(with_actors(history_query(patient.id, since, until))))
    return send_bytes(
        history_csv(history),
        f"access-history-P{patient.id}.csv",
        "text/csv; charset=utf-8",
    )
