"""Small factories that build valid rows with sensible defaults. They flush, never commit."""

from __future__ import annotations

import itertools
from typing import Any

from referrals.auth.models import (
    ROLE_ORGANISATION_KINDS,
    Organisation,
    OrganisationKind,
    Role,
    User,
)
from referrals.auth.services import (
    OrganisationFields,
    UserFields,
    create_organisation,
    create_user,
)

TEST_PASSWORD = "a-long-test-passphrase"
_sequence = itertools.count(1)

_DEFAULT_KIND = {
    Role.ADMIN: OrganisationKind.LINK_WORKER_SERVICE,
    Role.REFERRER: OrganisationKind.GP_PRACTICE,
    Role.LINK_WORKER: OrganisationKind.LINK_WORKER_SERVICE,
    Role.ARTIST: OrganisationKind.PROVIDER,
    Role.COMMISSIONER: OrganisationKind.COMMISSIONER,
}


def make_organisation(
    kind: OrganisationKind | str = OrganisationKind.GP_PRACTICE, **overrides: Any
) -> Organisation:
    n = next(_sequence)
    kind = OrganisationKind(kind)
    fields = {
        "name": f"{kind.label} {n}",
        "kind": kind,
        "ods_code": f"Z{n:05d}" if kind is OrganisationKind.GP_PRACTICE else None,
        "active": True,
    }
    fields.update(overrides)
    return create_organisation(None, OrganisationFields(**fields))


def make_user(
    role: Role | str = Role.REFERRER,
    *,
    organisation: Organisation | None = None,
    password: str | None = TEST_PASSWORD,
    **overrides: Any,
) -> User:
    role = Role(role)
    n = next(_sequence)
    if organisation is None:
        organisation = make_organisation(_DEFAULT_KIND[role])
    assert organisation.kind in ROLE_ORGANISATION_KINDS[role]
    fields = {
        "email": f"{role.value}{n}@example.test",
        "name": f"Test {role.label} {n}",
        "role": role,
        "organisation": organisation,
        "active": True,
    }
    fields.update(overrides)
    return create_user(None, UserFields(**fields), password)
