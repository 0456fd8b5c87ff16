"""Who may see which referrals and patients: one loader per resource, scoped in the query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, false, select, true

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.intake.models import Patient, Referral


def referral_scope(user: Any) -> Any:
    """A WHERE clause limiting referrals to those the user may see."""
    if user.role in (Role.ADMIN, Role.LINK_WORKER):
        return true()
    if user.role == Role.REFERRER:
        return Referral.gp_practice_id == user.organisation_id
    return false()  # artists and commissioners never see referrals


def patient_scope(user: Any) -> Any:
    if user.role in (Role.ADMIN, Role.LINK_WORKER):
        return true()
    if user.role == Role.REFERRER:
        return Patient.gp_practice_id == user.organisation_id
    return false()


def scoped_referrals(user: Any) -> Select[Any]:
    return select(Referral).where(referral_scope(user))


def get_referral_or_404(referral_id: int, user: Any) -> Referral:
    """The referral, if it exists and the user may see it; otherwise 404 (never 403)."""
    return db.first_or_404(scoped_referrals(user).where(Referral.id == referral_id))


def find_patient_in_scope(user: Any, nhs_number: str) -> Patient | None:
    return db.session.scalar(
        select(Patient).where(Patient.nhs_number == nhs_number, patient_scope(user))
    )
