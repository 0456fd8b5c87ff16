"""Builders for referral tests: valid form data and referrals made through the services."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from referrals.auth.models import Organisation, User
from referrals.intake.services import PatientDetails, ReferralDetails, create_referral
from referrals.vocab import ContactMethod, Ethnicity, Pathway, ReferrerType, Sex

VALID_NHS = ["9434765919", "4010232137", "9990000018", "9990000026", "9990000034"]


def nhs_numbers() -> Any:
    """Endless valid synthetic NHS numbers (999 range)."""
    n = 100
    while True:
        nine = f"999{n:06d}"
        total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        n += 1
        if check != 10:
            yield nine + str(check)


def referral_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "nhs_number": "943 476 5919",
        "given_name": "Margaret",
        "family_name": "Atkins",
        "date_of_birth": "15/3/1948",
        "sex": "female",
        "ethnicity": "white",
        "postcode": "gl1 2ab",
        "phone": "01632 960001",
        "email": "",
        "preferred_contact": "phone",
        "referrer_type": "gp",
        "pathway": "copd_asthma",
        "reason": "COPD, lonely since her husband died, used to sing in a choir",
        "interests": ["singing", "music"],
        "consent": "y",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def make_referral(
    actor: User,
    practice: Organisation,
    *,
    nhs: str,
    today: date | None = None,
    at: datetime | None = None,
    **overrides: Any,
) -> Any:
    """A referral made through the service as `actor` would send it. Overrides name any field
    of the patient (`given_name`, `date_of_birth`, ...) or of the referral (`pathway`,
    `reason`, `interests`, ...)."""
    today = today or date(2026, 11, 23)
    patient_fields = {field.name for field in dataclasses.fields(PatientDetails)}
    patient = PatientDetails(
        **{
            "nhs_number": nhs,
            "given_name": "Test",
            "family_name": "Person",
            "date_of_birth": date(1950, 1, 1),
            "sex": Sex.FEMALE,
            "ethnicity": Ethnicity.WHITE,
            "postcode": "GL1 2AB",
            "phone": "01632960001",
            "email": None,
            "preferred_contact": ContactMethod.PHONE,
            **{name: overrides.pop(name) for name in list(overrides) if name in patient_fields},
        }
    )
    details = ReferralDetails(
        **{
            "patient": patient,
            "gp_practice": practice,
            "referrer_type": ReferrerType.GP,
            "pathway": Pathway.MENTAL_HEALTH,
            "reason": "Low mood",
            **overrides,
        }
    )
    return create_referral(actor, details, today=today, at=at)


def pdf_text(data: bytes) -> str:
    """All the text of a PDF, for asserting what a letter or report says."""
    import io

    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def pdf_fonts(data: bytes) -> set[str]:
    """The base names of every font a PDF's pages use (subset prefixes removed)."""
    import io

    from pypdf import PdfReader

    names = set()
    for page in PdfReader(io.BytesIO(data)).pages:
        fonts = page.get("/Resources", {}).get_object().get("/Font", {})
        for font in fonts.values():
            names.add(str(font.get_object()["/BaseFont"]).lstrip("/").split("+")[-1])
    return names
