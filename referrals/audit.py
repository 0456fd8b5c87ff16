"""The audit trail: who did or saw what, when (UTC) and from where. Append-only.

Three ways to write an entry, by what it records:

- `record`: a change. It joins the unit of work's transaction and is kept exactly when the
  change is (the request, job or command commits once at its boundary).
- `record_view`: a person's data shown (pages, downloads, searches, look-ups). It is kept
  whatever becomes of the request's own work: on a GET it is written at once by a short
  transaction of its own (`record_now`); on a POST it is kept in `g` and written on the
  request's own connection after the view has committed or abandoned its work (see
  `_write_kept_views`), never on a second connection, which on SQLite would wait on the write
  lock the request itself holds.
- `record_now`: a reading request's entry written at once (refusals, and views on a GET).

Every entry also records, as it is written, the person it is about (`subject_person_id`: the
person it names, or the person of the referral or place on a course it names) and where it
happened (`source`: the page or API endpoint, the command or the job), so that "who has seen
this person?" is one index range (`referrals.admin.access_history`).
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from sqlalchemy import JSON, ForeignKey, Index, String, column, event, insert, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from werkzeug.wrappers import Response

from referrals import audit_spool
from referrals.db import end_reads, is_lock_timeout, short_write, unit_of_work_writes, utcnow
from referrals.extensions import db
from referrals.ids import parse_id

log = logging.getLogger(__name__)


class AuditEvent(db.Model):  # type: ignore[name-defined]
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    # The person whose data was seen or changed (patient id), whatever record of theirs the
    # entry names: "who has seen this person?" is one index range. No foreign key: the log
    # outlives any change to the records it describes.
    subject_person_id: Mapped[int | None]
    # Where it happened: the page or API endpoint, or the command or job (see `_source`).
    source: Mapped[str | None] = mapped_column(String(120))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    actor = relationship("User")

    # Each filter of the audit pages is one index range read newest first: a person's history,
    # a user's actions, one action (`at` alone serves the whole log and date ranges).
    __table_args__ = (
        Index("ix_audit_event_object", "object_type", "object_id"),
        Index("ix_audit_event_subject", "subject_person_id", "at", "id"),
        Index("ix_audit_event_actor", "actor_id", "at", "id"),
        Index("ix_audit_event_action_at", "action", "at", "id"),
    )


class AuditLogIsAppendOnly(RuntimeError):
    pass


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditLogIsAppendOnly("audit events cannot be changed or deleted")


AUDIT_JOB = "audit_job"  # set in `g` while a scheduled job runs: its entries name the job


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password file
        return f"uid {os.getuid()}"


def _origin() -> dict[str, Any]:
    """Who acted outside a request: a command records the operating-system user who ran it
    (beside the person named with `--by`, its actor), and a job records the job."""
    origin: dict[str, Any] = {}
    command = click.get_current_context(silent=True)
    if command is not None:
        origin["os_user"] = _os_user()
        origin["command"] = command.command_path
    if has_app_context() and g.get(AUDIT_JOB):
        origin["job"] = g.get(AUDIT_JOB)
    return origin


def _source() -> str | None:
    """The page or API endpoint of a request; otherwise the command, or the job."""
    if has_request_context():
        return request.endpoint
    if has_app_context() and g.get(AUDIT_JOB):
        return f"job {g.get(AUDIT_JOB)}"[:120]
    command = click.get_current_context(silent=True)
    if command is not None:
        return f"command {command.command_path}"[:120]
    return None


# Records that belong to one person, found by id: (table, key in `detail` naming one).
_PERSON_RECORDS = (
    ("patient", "patient_id"),
    ("referral", "referral_id"),
    ("enrolment", "enrolment_id"),
)


def _subject(
    obj: Any, object_type: str | None, object_id: Any, detail: dict[str, Any]
) -> tuple[str, int] | None:
    """The nearest record of one person the entry names, as (table, id): the person, else
    their referral, else their place on a course (resolved to the person by `_resolve`)."""
    for kind, key in _PERSON_RECORDS:
        if object_type == kind and (found := parse_id(object_id)) is not None:
            return kind, found
        if kind == "patient" and (found := parse_id(getattr(obj, "patient_id", None))):
            return kind, found  # a referral (or anything else) that carries its person's id
        if (found := parse_id(detail.get(key))) is not None:
            return kind, found
    return None


_REFERRAL = table("referral", column("id"), column("patient_id"))
_ENROLMENT = table("enrolment", column("id"), column("referral_id"))


def _resolve(subjects: Sequence[tuple[str, int] | None]) -> list[int | None]:
    """The person (patient id) of each subject, at most two queries for any number of them."""
    people: dict[tuple[str, int], int] = {s: s[1] for s in subjects if s and s[0] == "patient"}
    referrals = {s[1] for s in subjects if s and s[0] == "referral"}
    enrolments = {s[1] for s in subjects if s and s[0] == "enrolment"}
    with db.session.no_autoflush:
        if referrals:
            found = select(_REFERRAL.c.id, _REFERRAL.c.patient_id).where(
                _REFERRAL.c.id.in_(referrals)
            )
            people |= {("referral", key): person for key, person in db.session.execute(found)}
        if enrolments:
            found = (
                select(_ENROLMENT.c.id, _REFERRAL.c.patient_id)
                .join(_REFERRAL, _REFERRAL.c.id == _ENROLMENT.c.referral_id)
                .where(_ENROLMENT.c.id.in_(enrolments))
            )
            people |= {("enrolment", key): person for key, person in db.session.execute(found)}
    return [people.get(s) if s else None for s in subjects]


def _rows(
    actor: Any,
    action: str,
    items: Sequence[tuple[Any, str | None, Any, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Audit rows' column values for (object, object type, object id, detail), fixed at the
    moment of the view (who, when, from where), each naming the person it is about."""
    rows = []
    subjects = []
    # The same for every row: worked out once (the actor is often a proxy to the signed-in
    # user, and each look-up through it costs).
    at = utcnow()
    actor_id = getattr(actor, "id", None) if getattr(actor, "is_authenticated", False) else None
    in_request = has_request_context()
    source = _source()
    ip_address = request.remote_addr if in_request else None
    origin = {} if in_request else _origin()
    for obj, object_type, object_id, detail in items:
        if obj is not None:
            object_type = object_type or getattr(obj, "__tablename__", type(obj).__name__.lower())
            object_id = object_id if object_id is not None else getattr(obj, "id", None)
        subjects.append(_subject(obj, object_type, object_id, detail))
        if origin:
            detail = {**origin, **detail}
        rows.append(
            {
                "at": at,
                "actor_id": actor_id,
                "action": action,
                "object_type": object_type,
                "object_id": None if object_id is None else str(object_id),
                "source": source,
                "ip_address": ip_address,
                "detail": detail,
            }
        )
    for row, person in zip(rows, _resolve(subjects), strict=True):
        row["subject_person_id"] = person
    return rows


def _row(
    actor: Any, action: str, obj: Any, object_type: str | None, object_id: Any, detail: Any
) -> dict[str, Any]:
    return _rows(actor, action, [(obj, object_type, object_id, detail)])[0]


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
    event_row = AuditEvent(**_row(actor, action, obj, object_type, object_id, detail))
    db.session.add(event_row)
    return event_row


def record_many(actor: Any, action: str, items: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """One audit event per (object, detail), written as a single batch."""
    rows = _rows(actor, action, [(obj, None, None, detail) for obj, detail in items])
    if rows:
        db.session.execute(insert(AuditEvent), rows)


def record_now(
    actor: Any,
    action: str,
    obj: Any = None,
    *,
    object_type: str | None = None,
    object_id: Any = None,
    **detail: Any,
) -> None:
    """Write an audit event at once in its own short transaction.

    For reads (a person's record viewed on a GET): the event must be kept even if nothing else
    is committed, and a transaction that starts with its write never meets SQLite's
    "database is locked" on upgrading a read. A writing request already holds the write lock,
    so there the event simply joins its transaction (use `record_view` for what it shows).
    """
    if unit_of_work_writes():
        record(actor, action, obj, object_type=object_type, object_id=object_id, **detail)
        return
    _write_at_once([_row(actor, action, obj, object_type, object_id, detail)])


_KEPT_VIEWS = "audit_views_to_write"


def record_view(
    actor: Any,
    action: str,
    obj: Any = None,
    *,
    object_type: str | None = None,
    object_id: Any = None,
    **detail: Any,
) -> None:
    """Audit that `actor` was shown a person's data, so that the entry outlives the request's
    own work: a search or look-up POSTed and never committed is still recorded.

    On a GET (and inside `without_write_lock`) the entry is written at once, by a short
    transaction of its own that starts with its write (as `record_now` does). On
    a writing request it is kept until the view has answered and is then written on the
    request's own connection, after the request's own commit or rollback (`_write_kept_views`).
    Commands and jobs have no request: the entry joins their unit of work like any other.
    An entry names one person's record (patient, referral or enrolment) wherever a page shows
    people, one entry per person, so that "who has seen this person?" is a lookup.
    """
    _write_views([_row(actor, action, obj, object_type, object_id, detail)])


def record_views(actor: Any, action: str, items: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """`record_view` for each (object, detail) a list or register page shows, in one write."""
    _write_views(_rows(actor, action, [(obj, None, None, detail) for obj, detail in items]))


def _write_views(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if has_request_context() and unit_of_work_writes():
        g.setdefault(_KEPT_VIEWS, []).extend(rows)
    elif unit_of_work_writes():  # a command or job: its own unit of work keeps them
        db.session.execute(insert(AuditEvent), rows)
    else:
        _write_at_once(rows)


def _write_at_once(rows: list[dict[str, Any]]) -> None:
    """A reading request's entries, written by a short transaction of its own, or kept in the
    spool when the write lock cannot be had within BEST_EFFORT_WRITE_WAIT_MS.

    A page must not fail or wait behind a long writer (a job or command holding SQLite's one
    write lock), yet what it showed must be recorded: the entries are then kept as a file in
    the spool, written and synced before the page is answered, and moved into the audit table
    by the next entry written at once (here) or after the next scheduled job
    (`move_spooled_in`), kept with the time they were made.
    """
    end_reads(db.session)  # a reading request's snapshot would pin SQLite's log through the write
    folder = audit_spool.folder()
    claimed: list[Any] = []
    moved: list[Any] = []
    try:
        with short_write(db.engine, int(current_app.config["BEST_EFFORT_WRITE_WAIT_MS"])) as conn:
            conn.execute(insert(AuditEvent), rows)  # takes the write lock, or gives up
            claimed = audit_spool.claim(folder)
            moved = _move_spooled_in_on(conn, claimed)
    except DBAPIError as error:
        audit_spool.release([path for path in claimed if path.exists()])
        if not is_lock_timeout(error):
            raise
        audit_spool.keep(folder, rows)
        log.warning("database busy: %d access entries kept in the spool", len(rows))
        return
    except BaseException:
        audit_spool.release([path for path in claimed if path.exists()])
        raise
    audit_spool.discard(moved)


def _move_spooled_in_on(connection: Connection, claimed: list[Any]) -> list[Any]:
    """Insert the claimed files' entries on `connection` (which holds the write lock), each
    file in a savepoint: a file that cannot be read or inserted (say its actor was since
    deleted) is set aside for someone to look at, never retried on every page. Returns the
    files moved in (to remove once committed)."""
    moved = []
    for path in claimed:
        try:
            with connection.begin_nested():
                connection.execute(insert(AuditEvent), audit_spool.read([path]))
        except DBAPIError as error:
            if is_lock_timeout(error):
                raise
            audit_spool.set_aside(path)
            log.error("spooled access entries %s could not be moved in: set aside", path.name)
            continue
        except (ValueError, KeyError, TypeError):  # not JSON, or not entries
            audit_spool.set_aside(path)
            log.error("spooled access entries %s could not be read: set aside", path.name)
            continue
        moved.append(path)
    return moved


def move_spooled_in() -> int:
    """Move the spooled entries into the audit table in the unit of work's transaction, which
    must be a writing one (a writing request, job or command); committed with it. Returns how
    many were moved; the files go once the transaction has committed."""
    claimed = audit_spool.claim(audit_spool.folder())
    if not claimed:
        return 0
    moved: list[Any] = []
    try:
        moved = _move_spooled_in_on(db.session.connection(), claimed)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        audit_spool.release([path for path in claimed if path.exists()])
        raise
    audit_spool.discard(moved)
    return len(moved)


def _write_kept_views(response: Response) -> Response:
    """Write the views a writing request kept, on its own connection, once its work is done.

    By now the view has committed what it meant to keep; anything it left uncommitted is rolled
    back here, as the request's teardown would, so the entries are never committed with half a
    change. On SQLite the request's connection then takes the write lock afresh (BEGIN
    IMMEDIATE): it waits for other requests only, up to the busy timeout; if another process
    holds the lock longer, the entries go to the spool. If writing fails otherwise, the request
    fails (its answer, with the person's data, is not sent). An answer of 500 showed nobody's
    data.
    """
    rows = g.pop(_KEPT_VIEWS, None)
    if not rows or response.status_code >= 500:
        return response
    db.session.rollback()
    try:
        db.session.execute(insert(AuditEvent), rows)
        db.session.commit()
    except DBAPIError as error:
        db.session.rollback()
        if not is_lock_timeout(error):
            raise
        # Another process took the lock after the view's own commit: the entries are kept in
        # the spool, and what the view saved is not reported as unsaved.
        audit_spool.keep(audit_spool.folder(), rows)
        log.warning("database busy: %d access entries kept in the spool", len(rows))
    return response


def init_app(app: Flask) -> None:
    app.after_request(_write_kept_views)
