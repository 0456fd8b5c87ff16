"""Organisations, users, server-side sessions, login attempts, API tokens and two-step
verification (recovery codes, the security settings admins change)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.db import PublicIdMixin, TimestampMixin, utcnow
from referrals.extensions import db
from referrals.text import EMAIL_MAX
from referrals.types import enum_column

# The columns' lengths are the limits the forms and the API check.
ORGANISATION_NAME_MAX = 200
USER_NAME_MAX = 120
TOKEN_NAME_MAX = 120


class OrganisationKind(enum.StrEnum):
    GP_PRACTICE = "gp_practice"
    PROVIDER = "provider"
    COMMISSIONER = "commissioner"
    LINK_WORKER_SERVICE = "link_worker_service"

    @property
    def label(self) -> str:
        return {
            "gp_practice": "GP practice",
            "provider": "Arts provider",
            "commissioner": "Commissioner",
            "link_worker_service": "Link worker service",
        }[self.value]


class Role(enum.StrEnum):
    ADMIN = "admin"
    REFERRER = "referrer"
    LINK_WORKER = "link_worker"
    ARTIST = "artist"
    COMMISSIONER = "commissioner"

    @property
    def label(self) -> str:
        return {
            "admin": "Admin",
            "referrer": "Referrer",
            "link_worker": "Link worker",
            "artist": "Artist",
            "commissioner": "Commissioner",
        }[self.value]


# Which organisation kinds each role may belong to; admins may sit anywhere.
ROLE_ORGANISATION_KINDS: dict[Role, frozenset[OrganisationKind]] = {
    Role.ADMIN: frozenset(OrganisationKind),
    Role.REFERRER: frozenset({OrganisationKind.GP_PRACTICE}),
    Role.LINK_WORKER: frozenset({OrganisationKind.LINK_WORKER_SERVICE}),
    Role.ARTIST: frozenset({OrganisationKind.PROVIDER}),
    Role.COMMISSIONER: frozenset({OrganisationKind.COMMISSIONER}),
}


class Organisation(PublicIdMixin, TimestampMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(ORGANISATION_NAME_MAX), unique=True)
    kind: Mapped[OrganisationKind] = mapped_column(enum_column(OrganisationKind), index=True)
    ods_code: Mapped[str | None] = mapped_column(String(10), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    # A practice's shared (secure) mailbox: where its messages back are emailed.
    shared_mailbox: Mapped[str | None] = mapped_column(String(EMAIL_MAX))

    users: Mapped[list[User]] = relationship(back_populates="organisation")

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.kind}>"


class User(TimestampMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    name: Mapped[str] = mapped_column(String(USER_NAME_MAX))
    role: Mapped[Role] = mapped_column(enum_column(Role), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    password_changed_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # Two-step verification (auth.mfa). The secret is set when set-up starts and only counts
    # once confirmed (`mfa_enabled_at`); the last accepted time step refuses a replayed code.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None]
    mfa_enabled_at: Mapped[datetime | None]
    # Kinds of email this person chose not to get (in-app messages still come).
    email_opt_outs: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")

    organisation: Mapped[Organisation] = relationship(back_populates="users")

    # Flask-Login protocol. Sessions are validated server-side in auth.sessions.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class UserSession(db.Model):  # type: ignore[name-defined]
    """A signed-in browser. The cookie carries only `token`; revoking the row ends the session."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    ip_address: Mapped[str | None] = mapped_column(String(45))

    user: Mapped[User] = relationship()

    __table_args__ = (Index("ix_user_session_user_id_revoked_at", "user_id", "revoked_at"),)


class FailedStep(enum.StrEnum):
    """Which step of signing in failed: a password, or a two-step verification code."""

    PASSWORD = "password"  # noqa: S105  (a step's name)
    CODE = "code"


class LoginAttempt(db.Model):  # type: ignore[name-defined]
    """A failed sign-in step, by the email typed (known or not) and the client address, for
    the throttle in `auth.throttle`."""

    __tablename__ = "login_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    step: Mapped[FailedStep] = mapped_column(
        enum_column(FailedStep), default=FailedStep.PASSWORD, server_default="password"
    )

    __table_args__ = (
        Index("ix_login_attempt_email_at", "email", "at"),
        Index("ix_login_attempt_ip_address_at", "ip_address", "at"),
    )


class ApiToken(db.Model):  # type: ignore[name-defined]
    """A bearer token for the JSON API. Only its SHA-256 is stored; it acts as its user."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_MAX), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()

    __table_args__ = (Index("ix_api_token_user_id", "user_id"),)


class RecoveryCode(db.Model):  # type: ignore[name-defined]
    """A one-time code for signing in without the authenticator app. Only its SHA-256 is kept."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("user_id", "code_hash"),)


class SecuritySetting(db.Model):  # type: ignore[name-defined]
    """A security setting changed by an admin; it overrides the configured default."""

    __tablename__ = "security_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
