"""A person referring themselves from the public finder, through the intake service.

The referral is recorded exactly as any other (`intake.services.create_referral`): a
`self` referral with the course they asked about, on the link workers' caseload. A person who
refers themselves has no scope over anyone, so a stored record is never rewritten: an NHS
number that matches someone opens a reconciliation, and an open referral for them is left as
it is while the link workers are told. The sender is told the same thing whatever happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from referrals.audit import record
from referrals.auth.models import Organisation, OrganisationKind
from referrals.extensions import db
from referrals.intake.lifecycle import OPEN_STATUSES
from referrals.intake.models import Patient, Referral
from referrals.intake.services import (
    DuplicateOpenReferral,
    PatientDetails,
    ReferralDetails,
    create_referral,
    tell_link_workers,
)
from referrals.vocab import ArtForm, ContactMethod, Ethnicity, Pathway, ReferrerType, Sex

# A second self-referral for the same person within this many days is the same request.
REPEAT_WINDOW_DAYS = 30


@dataclass(frozen=True)
class SelfReferral:
    given_name: str
    family_name: str
    date_of_birth: date
    nhs_number: str | None
    postcode: str
    gp_practice: Organisation
    phone: str | None
    email: str | None
    preferred_contact: ContactMethod
    hopes: str
    pathway: Pathway | None
    access_needs: str
    course_id: int | None
    art_form: ArtForm | None
    consent: bool


def gp_practices() -> list[Organisation]:
    return list(
        db.session.scalars(
            select(Organisation)
            .where(Organisation.kind == OrganisationKind.GP_PRACTICE, Organisation.active.is_(True))
            .order_by(Organisation.name)
        )
    )


def _asked_already(request: SelfReferral, today: date) -> Referral | None:
    """An open self-referral for the same name and date of birth, sent recently."""
    return db.session.scalar(
        select(Referral)
        .join(Patient)
        .where(
            Referral.referrer_type == ReferrerType.SELF,
            Referral.status.in_(OPEN_STATUSES),
            Referral.received_on >= today - timedelta(days=REPEAT_WINDOW_DAYS),
            func.lower(Patient.given_name) == request.given_name.lower(),
            func.lower(Patient.family_name) == request.family_name.lower(),
            Patient.date_of_birth == request.date_of_birth,
        )
        .limit(1)
    )


def refer_yourself(
    actor: Any, request: SelfReferral, *, today: date, at: datetime | None = None
) -> Referral | None:
    """Record the request as a `self` referral, or None when it repeats an open one.

    `actor` is the anonymous visitor: no scope, no id. The caller commits.
    """
    if _asked_already(request, today) is not None:
        record(actor, "referral.self_referral_repeated", object_type="referral")
        return None
    details = ReferralDetails(
        patient=PatientDetails(
            nhs_number=request.nhs_number,
            given_name=request.given_name,
            family_name=request.family_name,
            date_of_birth=request.date_of_birth,
            sex=Sex.NOT_STATED,
            ethnicity=Ethnicity.NOT_STATED,
            postcode=request.postcode,
            phone=request.phone,
            email=request.email,
            preferred_contact=request.preferred_contact,
            access_needs=request.access_needs,
        ),
        gp_practice=request.gp_practice,
        referrer_type=ReferrerType.SELF,
        pathway=request.pathway or Pathway.OTHER,
        reason=request.hopes,
        interests=[request.art_form] if request.art_form else [],
        consent=request.consent,
        course_of_interest_id=request.course_id,
    )
    try:
        with db.session.begin_nested():
            referral = create_referral(actor, details, today=today, at=at)
    except DuplicateOpenReferral as duplicate:
        open_one = duplicate.found.referral or None
        open_id = open_one.id if open_one else duplicate.found.elsewhere_id
        if open_id is not None:
            tell_link_workers(
                open_id,
                f"The person on open referral R{open_id} asked to join a course through the "
                "public finder. Pick it up with them.",
                kind="duplicate_referral",
            )
        record(actor, "referral.self_referral_repeated", object_type="referral", object_id=open_id)
        return None
    tell_link_workers(
        referral.id,
        f"New self-referral R{referral.id} from the public finder. Contact the person.",
        kind="self_referral",
    )
    return referral
