"""Each scheduler process's sign of life, written every minute (read by /health/ready)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from referrals.db import utcnow
from referrals.extensions import db


class SchedulerHeartbeat(db.Model):  # type: ignore[name-defined]
    """One row per scheduler process (host and process id), its latest beat kept."""

    __tablename__ = "scheduler_heartbeat"

    process: Mapped[str] = mapped_column(String(160), primary_key=True)
    host: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_scheduler_heartbeat_beat_at", "beat_at"),)
