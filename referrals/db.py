"""Declarative base, constraint naming, UTC time and the SQLite connection settings."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import current_app, g, has_app_context, has_request_context, request
from sqlalchemy import DateTime, MetaData, String, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, registry, scoped_session
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use referrals.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


def new_public_id() -> str:
    """A random UUID: the stable, published identifier of a record (Open Referral UK)."""
    return str(uuid.uuid4())


class PublicIdMixin:
    """A record published in the open directory: its UUID never changes and never reveals
    the internal id."""

    public_id: Mapped[str] = mapped_column(String(36), unique=True, default=new_public_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


_READING_ONLY = "unit_of_work_reading_only"


def unit_of_work_writes() -> bool:
    """Whether the current unit of work may write: any non-safe HTTP method, any job or command,
    except inside `without_write_lock`."""
    if has_app_context() and g.get(_READING_ONLY):
        return False
    if has_request_context():
        return request.method not in ("GET", "HEAD", "OPTIONS")
    return True


@contextmanager
def without_write_lock(session: Session | scoped_session[Any]) -> Iterator[None]:
    """Run slow work (a password hash, a KPI return's figures) while holding no write lock.

    On SQLite a writing request holds the database's one write lock from its first statement,
    so a quarter-second hash inside it would hold up every other writer (other people signing
    in, saving registers) for as long. The request's transaction ends first (it must hold no
    unsaved change); what the block reads runs in a read transaction that ends on the way out;
    the next statement after the block starts the writing transaction afresh. Objects loaded
    before or inside are expired: keep plain values, and load again afterwards.
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("the unit of work has unsaved changes; save them first")
    session.commit()
    g.setdefault(_READING_ONLY, True)
    try:
        yield
    finally:
        g.pop(_READING_ONLY, None)
        session.rollback()


_FOUND_BUSY = "unit_of_work_found_the_lock_held"
# PostgreSQL's codes for "gave up waiting for a lock" and the two ways a transaction loses a
# race it may simply run again: lock_not_available, serialization_failure, deadlock_detected.
_POSTGRES_LOCK_CODES = frozenset({"55P03", "40001", "40P01"})


def is_lock_timeout(error: BaseException) -> bool:
    """Whether `error` means "another writer held the lock too long": the work was not done,
    and the same request sent again in a moment will most likely succeed."""
    if not isinstance(error, DBAPIError):
        return False
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        message = str(original)
        return "database is locked" in message or "database table is locked" in message
    return getattr(original, "sqlstate", None) in _POSTGRES_LOCK_CODES


def end_reads(session: Session | scoped_session[Any]) -> None:
    """End a reading unit of work's open transaction, keeping what it loaded (nothing is
    expired), before a short write on another connection (`short_write`).

    On SQLite an open read transaction pins the write-ahead log: the write's commit cannot
    checkpoint the log past it, so every such commit costs more and the log keeps growing. A
    unit of work with unsaved changes is left as it is; the next statement starts a new
    transaction.
    """
    orm = session() if isinstance(session, scoped_session) else session
    if not orm.in_transaction() or orm.new or orm.dirty or orm.deleted:
        return
    expiring = orm.expire_on_commit
    orm.expire_on_commit = False
    try:
        orm.commit()
    finally:
        orm.expire_on_commit = expiring


@contextmanager
def short_write(engine: Engine, wait_ms: int) -> Iterator[Connection]:
    """A short transaction on a connection of its own whose write waits at most `wait_ms` for
    the lock (SQLite's busy timeout, PostgreSQL's lock timeout), then raises (`is_lock_timeout`).

    For best-effort writes of a reading request (a session's last-seen time, an access-history
    entry): a page must not wait behind a long writer for something it can do later or keep
    elsewhere. Once one has given up, the unit of work's later ones give up at once. The
    caller's own session must hold no write lock (on SQLite it would wait on itself): call it
    before the request writes anything, or after its commit.
    """
    if has_app_context() and g.get(_FOUND_BUSY):
        wait_ms = 0  # this unit of work already found the lock held: no second wait
    with engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        previous = None
        if isinstance(driver, sqlite3.Connection):
            # Outside any transaction (the driver is in autocommit; see _begin_sqlite).
            previous = int(driver.execute("PRAGMA busy_timeout").fetchone()[0])
            driver.execute(f"PRAGMA busy_timeout = {max(wait_ms, 0):d}")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # 0 would mean "wait for ever" there.
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {max(wait_ms, 1):d}")
                yield connection
        except DBAPIError as error:
            if has_app_context() and is_lock_timeout(error):
                g.setdefault(_FOUND_BUSY, True)
            raise
        finally:
            if previous is not None and isinstance(driver, sqlite3.Connection):
                driver.execute(f"PRAGMA busy_timeout = {previous:d}")


def only_reads_from_now(session: Session | scoped_session[Any]) -> None:
    """Abandon the unit of work's changes; what it does from here on only reads (on SQLite it
    takes no write lock), so a page about a failed write can be shown while the lock is held."""
    session.rollback()
    g.setdefault(_READING_ONLY, True)


@event.listens_for(Engine, "connect")
def _configure_connection(dbapi_connection: Any, connection_record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        _configure_postgres(dbapi_connection)
        return
    # Autocommit at the driver level so that we emit BEGIN ourselves (see _begin_sqlite).
    dbapi_connection.isolation_level = None
    timeout = 10_000
    if has_app_context():
        timeout = int(current_app.config.get("SQLITE_BUSY_TIMEOUT_MS", timeout))
    cursor = dbapi_connection.cursor()
    _keep_private(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute(f"PRAGMA busy_timeout = {timeout:d}")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _configure_postgres(dbapi_connection: Any) -> None:
    """A write waits for a lock at most POSTGRES_LOCK_TIMEOUT_MS, then fails with
    lock_not_available, which a request answers with its "try again" page (`referrals.errors`)
    rather than holding a worker for as long as another transaction keeps the lock."""
    if not has_app_context() or not hasattr(dbapi_connection, "execute"):
        return
    timeout = int(current_app.config.get("POSTGRES_LOCK_TIMEOUT_MS", 0))
    if timeout > 0:
        dbapi_connection.execute(f"SET lock_timeout = {timeout:d}")
        dbapi_connection.commit()


def _keep_private(cursor: sqlite3.Cursor) -> None:
    """A database file just created (still empty) is made readable by the service's user only,
    as its backups are; SQLite gives its journal files the same permissions."""
    for _seq, name, path in cursor.execute("PRAGMA database_list").fetchall():
        if name == "main" and path and os.path.isfile(path) and os.path.getsize(path) == 0:
            os.chmod(path, 0o600)


@event.listens_for(Engine, "begin")
def _begin_sqlite(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is
    # locked" when another writer got in first; writing units take the lock up front instead.
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE" if unit_of_work_writes() else "BEGIN")
