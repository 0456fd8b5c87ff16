"""Who may see which referrals and patients: one loader per resource, scoped in the query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, false, select, true

from referrals.auth.models import Role
from referrals.extensions import db
from referrals.intake.models import Patient, Referral

# Who may refer (the pages' and the API's), and who triages and moves referrals on.
REFERRING = (Role.REFERRER, Role.LINK_WORKER, Role.ADMIN)
TRIAGING = (Role.LINK_WORKER, Role.ADMIN)


def referral_scope(user: Any) -> Any:
    """A WHERE clause limiting referrals to those the user may see."""
    if user.role in (Role.ADMIN, Role.LINK_WORKER):
        return true()
    if user.role == Role.REFERRER:
        return Referral.gp_practice_id == user.organisation_id
    return false()  # artists and commissioners never see referrals


def _patient_practice(user: Any) -> int | bool:
    """Whose records the user may see: True for everyone's, a practice's id for the people
    registered there, False for nobody's. `patient_scope` and `sees_patient` both read it."""
    if user.role in (Role.ADMIN, Role.LINK_WORKER):
        return True
    if user.role == Role.REFERRER:
        return int(user.organisation_id)
    return False


def patient_scope(user: Any) -> Any:
    """A WHERE clause limiting people to those whose stored details the user may see."""
    practice = _patient_practice(user)
    if isinstance(practice, bool):
        return true() if practice else false()
    return Patient.gp_practice_id == practice


def sees_patient(user: Any, patient: Patient) -> bool:
    """Whether the user may see this person's stored details (the rule of `patient_scope`)."""
    practice = _patient_practice(user)
    if isinstance(practice, bool):
        return practice
    return patient.gp_practice_id == practice


def scoped_referrals(user: Any) -> Select[Any]:
    return select(Referral).where(referral_scope(user))


def get_referral_or_404(referral_id: int, user: Any, *loaders: Any) -> Referral:
    """The referral, if it exists and the user may see it; otherwise 404 (never 403).

    `loaders`: what the page shows of it, loaded with it rather than lazily as it renders.
    """
    query = scoped_referrals(user).where(Referral.id == referral_id)
    return db.first_or_404(query.options(*loaders) if loaders else query)


def find_patient_in_scope(user: Any, nhs_number: str) -> Patient | None:
    return db.session.scalar(
        select(Patient).where(Patient.nhs_number == nhs_number, patient_scope(user))
    )
