"""Account services: sign-in with throttling, users and organisations, API tokens."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from flask_login import login_user, logout_user
from sqlalchemy import func, select

from referrals.audit import record
from referrals.auth import throttle
from referrals.auth.models import (
    ROLE_ORGANISATION_KINDS,
    ApiToken,
    Organisation,
    OrganisationKind,
    Role,
    User,
)
from referrals.auth.passwords import hash_password, needs_rehash, verify_password
from referrals.auth.sessions import end_current_session, revoke_all_sessions, start_session
from referrals.auth.throttle import Throttled
from referrals.db import utcnow, without_write_lock
from referrals.extensions import db


class LoginOutcome(enum.Enum):
    OK = "ok"
    REFUSED = "refused"
    CODE_NEEDED = "code_needed"  # password right; the second step (auth.mfa) comes next


def normalise_email(email: str) -> str:
    return email.strip().lower()


def sign_in(
    email: str, password: str, next_url: str | None = None
) -> tuple[LoginOutcome | Throttled, User | None]:
    """Check credentials, throttled whether or not the account exists.

    The throttle (`auth.throttle`) counts failures for the address typed from this client and
    for this client over all accounts, so it never reveals which accounts exist and never
    holds back the owner signing in from elsewhere. For a user with two-step verification the
    password starts no session: it opens a short challenge for the code instead
    (`CODE_NEEDED`), and `next_url` waits there.
    """
    email = normalise_email(email)
    # The hashes run outside the write transaction: see `db.without_write_lock`.
    with without_write_lock(db.session):
        throttled = throttle.check(email)
        found = db.session.execute(
            select(User.id, User.password_hash).where(User.email == email)
        ).first()
        if throttled is None:
            stored_hash = found.password_hash if found else None
            valid = verify_password(stored_hash, password)
            rehashed = (
                hash_password(password)
                if valid and stored_hash and needs_rehash(stored_hash)
                else None
            )
    if throttled is not None:
        record(None, "login.throttled", object_type="login", email_hash=_email_hash(email))
        return throttled, None

    user = db.session.get(User, found.id) if found else None
    if not valid or user is None or not user.active or not user.organisation.active:
        throttle.record_failure(email)
        record(None, "login.failed", object_type="login", email_hash=_email_hash(email))
        return LoginOutcome.REFUSED, None

    if rehashed is not None:
        user.password_hash = rehashed
    if user.mfa_enabled_at is not None:
        from referrals.auth.mfa import begin_challenge  # mfa builds on this module

        begin_challenge(user, next_url)
        return LoginOutcome.CODE_NEEDED, user
    complete_sign_in(user)
    return LoginOutcome.OK, user


def complete_sign_in(user: User, **detail: Any) -> None:
    """Every factor checked: renew the session and sign the user in."""
    start_session(user)
    login_user(user)
    user.last_login_at = utcnow()
    record(user, "login.succeeded", user, **detail)


def _email_hash(email: str) -> str:
    # The audit trail keeps who tried, without storing a mistyped address in clear.
    return hashlib.sha256(email.encode()).hexdigest()[:16]


def sign_out(user: Any) -> None:
    if getattr(user, "is_authenticated", False):
        record(user, "logout", user)
    end_current_session()
    logout_user()


@dataclass(frozen=True)
class UserFields:
    email: str
    name: str
    role: Role
    organisation: Organisation
    active: bool = True


class RoleOrganisationMismatch(ValueError):
    pass


def check_role_fits_organisation(role: Role, organisation: Organisation) -> None:
    if organisation.kind not in ROLE_ORGANISATION_KINDS[role]:
        allowed = ", ".join(sorted(k.label for k in ROLE_ORGANISATION_KINDS[role]))
        raise RoleOrganisationMismatch(f"A {role.label.lower()} must belong to a {allowed}")


def email_taken(email: str, *, excluding: User | None = None) -> bool:
    query = select(User.id).where(User.email == normalise_email(email))
    if excluding is not None:
        query = query.where(User.id != excluding.id)
    return db.session.scalar(query) is not None


def create_user(actor: Any, fields: UserFields, password: str | None) -> User:
    check_role_fits_organisation(fields.role, fields.organisation)
    user = User(
        email=normalise_email(fields.email),
        name=fields.name.strip(),
        role=fields.role,
        organisation=fields.organisation,
        active=fields.active,
        password_hash=hash_password(password) if password else None,
        password_changed_at=utcnow() if password else None,
    )
    db.session.add(user)
    db.session.flush()
    record(actor, "user.created", user, role=user.role.value)
    return user


def update_user(actor: Any, user: User, fields: UserFields) -> User:
    check_role_fits_organisation(fields.role, fields.organisation)
    changed = {
        name
        for name, new in (
            ("email", normalise_email(fields.email)),
            ("name", fields.name.strip()),
            ("role", fields.role),
            ("organisation", fields.organisation),
            ("active", fields.active),
        )
        if getattr(user, name) != new
    }
    user.email = normalise_email(fields.email)
    user.name = fields.name.strip()
    user.role = fields.role
    user.organisation = fields.organisation
    if user.active and not fields.active:
        deactivate_user(actor, user)
    user.active = fields.active
    # A change of role or organisation changes what the user may see: sign them out everywhere.
    if changed & {"role", "organisation"}:
        revoke_all_sessions(user)
    record(actor, "user.updated", user, fields=sorted(changed))
    return user


def deactivate_user(actor: Any, user: User) -> None:
    user.active = False
    revoke_all_sessions(user)
    revoke_api_tokens(actor, user, "account deactivated")
    record(actor, "user.deactivated", user)


def set_password(actor: Any, user: User, password: str) -> None:
    """A new password ends every session and stops every API token of the person."""
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    revoke_all_sessions(user)
    revoke_api_tokens(actor, user, "password changed")
    record(actor, "user.password_changed", user)


@dataclass(frozen=True)
class OrganisationFields:
    name: str
    kind: OrganisationKind
    ods_code: str | None
    active: bool = True
    shared_mailbox: str | None = None  # a practice's secure mailbox for messages back


def organisation_name_taken(name: str, *, excluding: Organisation | None = None) -> bool:
    query = select(Organisation.id).where(func.lower(Organisation.name) == name.strip().lower())
    if excluding is not None:
        query = query.where(Organisation.id != excluding.id)
    return db.session.scalar(query) is not None


def ods_code_taken(code: str, *, excluding: Organisation | None = None) -> bool:
    query = select(Organisation.id).where(Organisation.ods_code == code)
    if excluding is not None:
        query = query.where(Organisation.id != excluding.id)
    return db.session.scalar(query) is not None


def create_organisation(actor: Any, fields: OrganisationFields) -> Organisation:
    organisation = Organisation(
        name=fields.name.strip(),
        kind=fields.kind,
        ods_code=fields.ods_code,
        active=fields.active,
        shared_mailbox=fields.shared_mailbox,
    )
    db.session.add(organisation)
    db.session.flush()
    record(actor, "organisation.created", organisation, kind=organisation.kind.value)
    return organisation


def update_organisation(actor: Any, organisation: Organisation, fields: OrganisationFields) -> None:
    was_active = organisation.active
    organisation.name = fields.name.strip()
    organisation.kind = fields.kind
    organisation.ods_code = fields.ods_code
    organisation.active = fields.active
    organisation.shared_mailbox = fields.shared_mailbox
    if was_active and not fields.active:
        # Nobody signs in for an organisation that has been deactivated.
        for member in organisation.users:
            revoke_all_sessions(member)
            revoke_api_tokens(actor, member, "organisation deactivated")
    record(actor, "organisation.updated", organisation)


def issue_api_token(actor: Any, user: User, name: str = "") -> str:
    """Create a token for `user` and return it; only its hash is kept."""
    token = "aop_" + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        prefix=token[:10],
        name=name,
    )
    db.session.add(row)
    db.session.flush()
    record(actor, "api_token.issued", user, token_id=row.id, prefix=row.prefix)
    return token


def api_tokens_of(user: User) -> list[ApiToken]:
    """A person's tokens, those still working first, newest first."""
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(), ApiToken.id)
        )
    )


def api_token_of(user: User, token_id: int) -> ApiToken | None:
    """One of `user`'s tokens, or None: a token of someone else is never found this way."""
    return db.session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )


def revoke_api_token(actor: Any, token: ApiToken, reason: str = "revoked") -> bool:
    """Stop one token working; False if it already had. Every revocation is audited."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    detail: dict[str, Any] = {"token_id": token.id, "prefix": token.prefix, "reason": reason}
    record(actor, "api_token.revoked", token.user, **detail)
    return True


def revoke_api_tokens(actor: Any, user: User, reason: str) -> None:
    """Stop all of `user`'s tokens working (password changed, account or organisation off)."""
    for token in db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        revoke_api_token(actor, token, reason)


def user_for_api_token(token: str) -> User | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
    )
    if row is None or not row.user.active or not row.user.organisation.active:
        return None
    return row.user
