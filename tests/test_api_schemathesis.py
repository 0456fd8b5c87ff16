"""Schemathesis as a real client of the published OpenAPI document: every operation it
covers, every check, as each role. It must find nothing."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from referrals.auth.models import Role
from referrals.auth.services import issue_api_token
from referrals.extensions import db
from tests import factories

# Operations described by typed models; the course and KPI operations join as they move over.
TYPED = r"^/(me|organisations|referrals|openapi\.json|docs|problems)"


@pytest.mark.slow
@pytest.mark.xfail(
    reason="NHS numbers, postcodes, phones and bounded dates need formats Schemathesis can make",
    strict=False,
)
def test_the_api_keeps_its_published_promises(app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    tokens = [issue_api_token(None, factories.make_user(role)) for role in Role]
    db.session.commit()
    operations = [item.ok() for item in schema.include(path_regex=TYPED).get_all_operations()]
    assert len(operations) >= 9
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
            for token in tokens:
                case.call_and_validate(headers={"Authorization": f"Bearer {token}"})

        keeps_its_promises()
