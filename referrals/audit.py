"""The audit trail: who did or saw what, when (UTC) and from where. Append-only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import JSON, ForeignKey, Index, String, event, insert
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from referrals.db import unit_of_work_writes, utcnow
from referrals.extensions import db


class AuditEvent(db.Model):  # type: ignore[name-defined]
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    actor = relationship("User")

    __table_args__ = (Index("ix_audit_event_object", "object_type", "object_id"),)


class AuditLogIsAppendOnly(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditLogIsAppendOnly("audit events cannot be changed or deleted")


def record(
    actor: Any,
    action: str,
    obj: Any = None,
    *,
    object_type: str | None = None,
    object_id: Any = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to the current transaction; the caller's boundary commits it.

    `actor` is a user, or None for the system and anonymous visitors. `obj`, when given, names
    the object by its table and id.
    """
    if obj is not None:
        object_type = object_type or getattr(obj, "__tablename__", type(obj).__name__.lower())
        object_id = object_id if object_id is not None else getattr(obj, "id", None)
    actor_id = getattr(actor, "id", None) if actor is not None else None
    event_row = AuditEvent(
        actor_id=actor_id if getattr(actor, "is_authenticated", False) else None,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        ip_address=request.remote_addr if has_request_context() else None,
        detail=detail,
    )
    db.session.add(event_row)
    return event_row


def record_many(actor: Any, action: str, items: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """One audit event per (object, detail), written as a single batch."""
    ip = request.remote_addr if has_request_context() else None
    actor_id = getattr(actor, "id", None) if getattr(actor, "is_authenticated", False) else None
    now = utcnow()
    rows = [
        {
            "at": now,
            "actor_id": actor_id,
            "action": action,
            "object_type": getattr(obj, "__tablename__", type(obj).__name__.lower()),
            "object_id": str(obj.id),
            "ip_address": ip,
            "detail": detail,
        }
        for obj, detail in items
    ]
    if rows:
        db.session.execute(insert(AuditEvent), rows)


def record_now(actor: Any, action: str, obj: Any = None, **detail: Any) -> None:
    """Write an audit event at once in its own short transaction.

    For reads (a person's record viewed on a GET): the event must be kept even if nothing else
    is committed, and a transaction that starts with its write never meets SQLite's
    "database is locked" on upgrading a read. A writing request already holds the write lock,
    so there the event simply joins its transaction.
    """
    row = record(actor, action, obj, **detail)
    if unit_of_work_writes():
        return
    db.session.expunge(row)
    values = {c.key: getattr(row, c.key) for c in AuditEvent.__table__.columns if c.key != "id"}
    values["at"] = values["at"] or utcnow()
    values["detail"] = values["detail"] or {}
    with db.engine.begin() as connection:
        connection.execute(AuditEvent.__table__.insert().values(**values))
