"""One row per live postcode: where it is and which district it belongs to."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from referrals.extensions import db


class Place(db.Model):  # type: ignore[name-defined]
    """A postcode's centre (WGS84) and its district (the outward code, `GL1` of `GL1 2AB`)."""

    __tablename__ = "place"

    postcode: Mapped[str] = mapped_column(String(8), primary_key=True)
    district: Mapped[str] = mapped_column(String(4), index=True)
    latitude: Mapped[float]
    longitude: Mapped[float]
