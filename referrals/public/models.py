"""A provider's public profile: what the open directory says about an arts provider.

Kept by the provider's own artists (or an admin). Everything here is published, on the
finder's course pages and in the Open Referral UK feed, so it holds the organisation's public
contact only, never a person's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from referrals.db import utcnow
from referrals.extensions import db
from referrals.types import enum_column
from referrals.vocab import ProviderType

AREA_MAX = 200
DESCRIPTION_MAX = 2000


class ProviderProfile(db.Model):  # type: ignore[name-defined]
    __tablename__ = "provider_profile"

    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), primary_key=True
    )
    provider_type: Mapped[ProviderType] = mapped_column(enum_column(ProviderType))
    # Where it works, in words: "Gloucester and the Forest of Dean".
    area: Mapped[str] = mapped_column(String(AREA_MAX), default="")
    art_forms: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(30))
    website: Mapped[str | None] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
