"""KPI returns as records, and the log of scheduled job runs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referrals.auth.models import User
from referrals.courses.models import Contract
from referrals.db import utcnow
from referrals.extensions import db


class KpiReturn(db.Model):  # type: ignore[name-defined]
    """One version of a monthly return for a scope: its figures as they were when made."""

    __tablename__ = "kpi_return"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(40))
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contract.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    version: Mapped[int] = mapped_column(default=1)
    spec_version: Mapped[str] = mapped_column(String(10))
    figures: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    suppression_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    generated_at: Mapped[datetime] = mapped_column(default=utcnow)
    generated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    generated_by_job: Mapped[str | None] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(Text, default="")
    superseded_at: Mapped[datetime | None]
    # Made before the month's registers closed: its figures may still change.
    provisional: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # When a register of its month was first saved after it was made (admins regenerate it).
    registers_changed_at: Mapped[datetime | None]

    contract: Mapped[Contract | None] = relationship()
    generated_by: Mapped[User | None] = relationship()

    # The unique key is the claim that makes a return exactly once per scope, period and
    # version, however many scheduler processes try at the same moment.
    __table_args__ = (
        UniqueConstraint("scope_key", "period", "version", name="uq_kpi_return_scope_period"),
        Index("ix_kpi_return_period", "period"),
    )

    @property
    def is_current(self) -> bool:
        return self.superseded_at is None


class JobOutcome:
    """How a run ended (or that it is still going). Only `running` and `succeeded` hold the
    claim on a (job, period); a failed or abandoned run leaves it free for a retry."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"  # its process stopped beating: killed, or its host went away
    SKIPPED = "skipped"  # another run holds the claim


CLAIMING_OUTCOMES = (JobOutcome.RUNNING, JobOutcome.SUCCEEDED)
_CLAIMING = "outcome IN ('running', 'succeeded')"


class JobRun(db.Model):  # type: ignore[name-defined]
    """One run of a scheduled job: what, for which period, when, and how it ended."""

    __tablename__ = "job_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(60))
    period_key: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20), default="running")
    detail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str] = mapped_column(String(100), default="")
    # The day the run did its work for (a retry does the same work); its process's last sign
    # of life, written every minute or so while it runs.
    for_date: Mapped[date | None]
    heartbeat_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_job_run_job_id_period_key", "job_id", "period_key"),
        # The claim: at most one run per (job, period) that is running or has succeeded, so
        # however many scheduler processes or hosts start the same work, one does it.
        Index(
            "uq_job_run_claim",
            "job_id",
            "period_key",
            unique=True,
            sqlite_where=text(_CLAIMING),
            postgresql_where=text(_CLAIMING),
        ),
        Index("ix_job_run_started_at", "started_at"),
    )
