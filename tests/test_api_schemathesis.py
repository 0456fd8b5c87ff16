"""Schemathesis as a real client of the published OpenAPI document: every operation, every
check, as each role. It must find nothing."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from referrals.auth.models import Role, User
from referrals.auth.services import issue_api_token
from referrals.dates import EARLIEST, latest_planned
from referrals.extensions import db
from referrals.intake.validation import (
    PHONE,
    POSTCODE,
    InvalidValue,
    clean_date_of_birth,
    clean_nhs_number,
)
from referrals.openapi import FORMATS
from referrals.problems import PROBLEM_BASE
from tests import factories
from tests.test_api_courses import assessed_referral, make_contract


def _nhs_number(first_nine: str) -> str | None:
    """The nine digits with the check digit the service's own rule accepts, if any has one."""
    for last in "0123456789":
        try:
            return clean_nhs_number(first_nine + last)
        except InvalidValue:
            continue
    return None


# A day short of the calendar's today, so the service's time zone never sees a future date.
_YESTERDAY = date.today() - timedelta(days=1)
STRATEGIES = {
    "nhs-number": st.from_regex(r"[0-9]{9}", fullmatch=True).map(_nhs_number).filter(bool),
    "uk-postcode": st.from_regex(POSTCODE, fullmatch=True),
    "uk-phone": st.from_regex(PHONE, fullmatch=True),
    "past-date": st.dates(EARLIEST, _YESTERDAY).map(date.isoformat),
    "date-of-birth": st.dates(_YESTERDAY.replace(year=_YESTERDAY.year - 119), _YESTERDAY)
    .filter(lambda day: clean_date_of_birth(day, _YESTERDAY) == day)
    .map(date.isoformat),
    "term-date": st.dates(EARLIEST, latest_planned(_YESTERDAY)).map(date.isoformat),
    "month": st.dates(EARLIEST, _YESTERDAY).map(lambda day: day.isoformat()[:7]),
    "past-month": st.dates(EARLIEST, _YESTERDAY.replace(day=1) - timedelta(days=1)).map(
        lambda day: day.isoformat()[:7]
    ),
    # Addresses the referral form's rule accepts (no reserved or special-use domains).
    "email": st.from_regex(r"[a-z0-9]{1,20}@[a-z]{1,20}\.(org|com|net|uk)", fullmatch=True),
}
for name, strategy in STRATEGIES.items():
    schemathesis.openapi.format(name, strategy)


def test_every_format_the_document_names_has_a_strategy() -> None:
    assert set(FORMATS) <= set(STRATEGIES)


def _records_named(users: dict[Role, User]) -> dict[str, Any]:
    """Records a valid request may name, one of each kind: a request naming an id that exists
    nowhere is refused (422), which the document cannot know."""
    provider = users[Role.ARTIST].organisation
    contract = make_contract(users[Role.COMMISSIONER].organisation)
    return {
        "gp_practice_id": users[Role.REFERRER].organisation_id,
        "commissioner_id": users[Role.COMMISSIONER].organisation_id,
        "provider_id": provider.id,
        "contract_id": contract.id,
        "venue_id": factories.make_venue().id,
        "lead_artist_ids": [users[Role.ARTIST].id],
        "referral_id": assessed_referral(
            users[Role.LINK_WORKER], users[Role.REFERRER].organisation
        ).id,
        "contract_start": contract.start_date.isoformat(),
        "contract_month": contract.start_date.isoformat()[:7],
    }


def _naming_records(case: Any, records: dict[str, Any]) -> Any:
    """A valid (positive) case names records that exist, in its body and its query."""
    if not case.meta.generation.mode.is_positive:
        return case
    for part in ("body", "query"):
        values = getattr(case, part)
        if isinstance(values, dict):
            named = {key: value for key, value in values.items() if value is not None}
            setattr(case, part, values | {k: records[k] for k in named if k in records})
    if case.operation.label == "POST /referrals":  # link workers and admins name the practice
        case.body["gp_practice_id"] = records["gp_practice_id"]
    if case.operation.label == "POST /courses":  # sessions fall within the contract
        case.body["schedule"]["start_date"] = records["contract_start"]
    if case.operation.label == "POST /kpi/returns" and "contract_id" in case.body:
        case.body["period"] = records["contract_month"]
    return case


# Rules that relate a request to what is stored, or its fields to each other, which JSON Schema
# cannot say: a schema-valid request to these operations may be refused, but only with this
# kind of problem, at these fields.
REFUSED_BY_RULE = {
    # The lifecycle moves from the referral's current status, not before it was received.
    "POST /referrals/{referral_id}/transitions": {"transition-refused": r".*"},
    # Sessions fall within the contract's term and end by midnight; the youngest age is not
    # above the oldest.
    "POST /courses": {
        "course-rule": r"schedule\.start_date|min_age",
        "validation": r"schedule\.duration_minutes",
    },
    # The term ends after it starts; each KPI's levels run its way.
    "POST /contracts": {"validation": r"end_date|targets\.\w+\.\w+\.(expected|stretch)"},
    # A session already cancelled, or with its register taken, cannot be cancelled.
    "PATCH /sessions/{session_id}": {"course-rule": r"reason|status"},
}


def send(case: Any, client: Any, tokens: list[str], records: dict[str, Any]) -> None:
    """The case, as each role, checked against every promise of the document."""
    case = _naming_records(case, records)
    refusals = REFUSED_BY_RULE.get(case.operation.label, {})
    excluded = [positive_data_acceptance] if refusals else []
    for token in tokens:
        response = case.call_and_validate(
            session=client,
            headers={"Authorization": f"Bearer {token}"},
            excluded_checks=excluded,
        )
        if refusals and case.meta.generation.mode.is_positive and response.status_code == 422:
            problem = response.json()
            fields = refusals.get(problem["type"].removeprefix(PROBLEM_BASE))
            assert fields is not None, response.text
            assert all(re.fullmatch(fields, field) for field in problem["errors"]), response.text


@pytest.mark.slow
def test_the_api_keeps_its_published_promises(app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    users = {role: factories.make_user(role) for role in Role}
    tokens = [issue_api_token(None, user) for user in users.values()]
    records = _records_named(users)
    db.session.commit()
    # Each request in its own app context, as in production (see tests/conftest.py).
    client = app.test_client()
    # Literals harvested from our source are judged by a validator that cannot check our own
    # formats ("hour" would pass as a phone number), so they are not offered as valid values.
    schema.config.analysis.constants.enabled = False
    operations = [item.ok() for item in schema.include(path_regex="^/").get_all_operations()]
    document = schema.raw_schema["paths"]
    every = {f"{method.upper()} {path}" for path, item in document.items() for method in item}
    assert {operation.label for operation in operations} == every
    assert len(every) >= 28
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=8,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def keeps_its_promises(case: Any) -> None:
            send(case, client, tokens, records)

        keeps_its_promises()
