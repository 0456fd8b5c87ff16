"""Online backups of the service's database, and restores that check what they brought back.

SQLite: SQLite's online backup API copies the database from a connection of its own in a single
step, which reads one consistent snapshot; in WAL mode the service's writers carry on meanwhile.
PostgreSQL: `pg_dump --format=custom`, itself one consistent snapshot, and `pg_restore`.

A backup is written beside its destination, checked (SQLite `PRAGMA integrity_check` and
`foreign_key_check`; a PostgreSQL archive is read back in full) and only then moved into place,
readable by its owner only, with a copy of the erasure ledger beside it (`referrals.erasures`).
Both directions report the rows in every table, and a restore fails if the database it produced
does not hold exactly the rows in the backup. Passwords are handed to the PostgreSQL tools in
their environment, never on a command line or in output.

A restore first reads the backup's migration revision: one newer than this code is refused
before anything is touched; an older one is upgraded after restoring. It then re-applies every
erasure in the ledger that the backup predates, before the service starts on the database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import func, inspect, select, table
from sqlalchemy.engine import URL

from referrals.audit import record
from referrals.auth.models import Role, User
from referrals.auth.services import normalise_email
from referrals.erasures import LEDGER_SUFFIX, copy_beside, reapply_erasures
from referrals.extensions import db

# Bookkeeping tables that hold rows even in a database with no data yet.
BOOKKEEPING_TABLES = frozenset({"alembic_version"})
# libpq settings a database URL may carry, passed on to the PostgreSQL tools.
LIBPQ_ENVIRONMENT = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}


class BackupError(RuntimeError):
    """A backup or restore that could not be made, or did not check out."""


@dataclasses.dataclass(frozen=True)
class BackupReport:
    path: Path
    integrity: str  # "ok", or what the check found
    counts: dict[str, int]  # rows per table
    reapplied: list[int] = dataclasses.field(default_factory=list)  # people erased again
    upgraded: bool = False  # the restored database was upgraded to this code's revision

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())


def database_url() -> URL:
    return db.engine.url


def backend() -> str:
    return database_url().get_backend_name()


def create_backup(output: Path, *, force: bool = False, actor: Any = None) -> BackupReport:
    """Back up the configured database to `output` while the service keeps running."""
    output = Path(output)
    if output.exists() and not force:
        raise BackupError(f"{output} already exists; choose another file or pass --force")
    if not output.parent.is_dir():
        raise BackupError(f"{output.parent} is not a folder")
    if backend() == "sqlite" and output.resolve() == _sqlite_path().resolve():
        raise BackupError("the backup cannot be written over the database itself")
    partial = output.with_name(f".{output.name}.partial")
    partial.unlink(missing_ok=True)
    _create_private(partial)
    try:
        if backend() == "sqlite":
            report = _sqlite_backup(partial)
        elif backend() == "postgresql":
            report = _postgresql_backup(partial)
        else:
            raise BackupError(f"backups of {backend()} databases are not supported")
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    copy_beside(output)
    record(
        actor,
        "backup.created",
        object_type="backup",
        file=output.name,
        tables=len(report.counts),
        rows=report.total_rows,
    )
    return BackupReport(output, report.integrity, report.counts)


def restore_backup(source: Path, *, force: bool = False, by: str | None = None) -> BackupReport:
    """Restore `source` into the configured database, which must be empty unless `force`.

    `by` is the email of the admin answerable for it: the database it was checked against is
    the one just replaced, so they are looked up in the restored one (and named either way)."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    if backend() not in ("sqlite", "postgresql"):
        raise BackupError(f"restores into {backend()} databases are not supported")
    revision = backup_revision(source)
    upgrade_needed = _check_revision(source, revision)
    if backend() == "sqlite":
        report = _sqlite_restore(source, force=force)
    else:
        report = _postgresql_restore(source, force=force)
    if upgrade_needed:
        db.session.remove()
        upgrade()
    asker = None
    if by is not None:
        asker = db.session.scalar(
            select(User).where(User.email == normalise_email(by), User.role == Role.ADMIN)
        )
    beside = source.with_name(source.name + LEDGER_SUFFIX)
    reapplied = reapply_erasures(asker, beside if beside.is_file() else None, restored=source.name)
    record(
        asker,
        "backup.restored",
        object_type="backup",
        by=by,
        file=source.name,
        tables=len(report.counts),
        rows=report.total_rows,
        revision=revision,
        upgraded_to=code_head() if upgrade_needed else None,
        **reapplied.as_detail(),
    )
    return dataclasses.replace(report, reapplied=reapplied.erased, upgraded=upgrade_needed)


# Migration revisions ---------------------------------------------------------------------------


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", current_app.extensions["migrate"].directory)
    return ScriptDirectory.from_config(config)


def code_head() -> str | None:
    return _scripts().get_current_head()


def _check_revision(source: Path, revision: str | None) -> bool:
    """Whether the restored database needs upgrading; a backup this code cannot read (made by a
    newer version of the service) is refused, with what to do instead."""
    head = code_head()
    if revision is None or revision == head:
        return False
    try:
        _scripts().get_revision(revision)
    except CommandError:
        raise BackupError(
            f"{source.name} was made by a newer version of the service (database revision "
            f"{revision}; this version knows revisions up to {head}). Install the version "
            f"that made it, then run: referrals backup restore {source} --by EMAIL"
        ) from None
    return True


def backup_revision(source: Path) -> str | None:
    """The migration revision the backup's database was at (None: no revision recorded)."""
    if backend() == "sqlite":
        try:
            with _sqlite(source, read_only=True) as backup:
                row = backup.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:  # not a database, or no revision table: checked later
            return None
        return str(row[0]) if row else None
    args, env = _pg_tool("pg_restore")
    try:
        dumped = _run(
            [*args[:2], "--data-only", "--table=alembic_version", "--file=-", str(source)], env
        ).stdout
    except BackupError:  # not an archive: the restore says so
        return None
    lines = iter(dumped.splitlines())
    for line in lines:
        if _COPY.match(line):
            first = next(lines, "\\.")
            return None if first == "\\." else first.strip()
    return None


def database_counts() -> dict[str, int]:
    """Rows in every table of the configured database."""
    with db.engine.connect() as connection:
        names = inspect(connection).get_table_names()
        return {
            name: int(connection.scalar(select(func.count()).select_from(table(name))) or 0)
            for name in sorted(names)
        }


def holds_data(counts: dict[str, int]) -> bool:
    return any(n for name, n in counts.items() if name not in BOOKKEEPING_TABLES)


def _create_private(path: Path) -> None:
    """Create an empty file only its owner can read: a backup holds patients' records."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _check_counts(expected: dict[str, int], found: dict[str, int]) -> None:
    differences = [
        f"{name}: {expected.get(name, 0)} in the backup, {found.get(name, 0)} restored"
        for name in sorted(set(expected) | set(found))
        if expected.get(name, 0) != found.get(name, 0) and name in expected
    ]
    if differences:
        raise BackupError(
            "the restored database differs from the backup: " + "; ".join(differences)
        )


# Backups on a schedule -------------------------------------------------------------------------

# What the nightly job names its files; only files named so are ever removed from the folder.
SCHEDULED_NAME = re.compile(r"^referrals-\d{8}-\d{6}Z\.(?:sqlite|dump)$")


def scheduled_backup(
    folder: Path, keep: int, now: datetime | None = None
) -> tuple[Path, list[Path]]:
    """Back up into `folder` as referrals-YYYYMMDD-HHMMSSZ.sqlite (or .dump on PostgreSQL),
    then remove the oldest such files beyond the newest `keep`. The folder is created, readable
    by its owner only, when missing. Returns the new file and the files removed."""
    if keep < 1:
        raise BackupError(f"BACKUP_KEEP must be at least 1, not {keep}")
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d-%H%M%SZ")
    suffix = "sqlite" if backend() == "sqlite" else "dump"
    report = create_backup(folder / f"referrals-{stamp}.{suffix}")
    kept = sorted(
        (p for p in folder.iterdir() if SCHEDULED_NAME.match(p.name) and p.is_file()),
        key=lambda p: p.name,
    )
    removed = kept[:-keep]
    for old in removed:
        old.unlink(missing_ok=True)
        old.with_name(old.name + LEDGER_SUFFIX).unlink(missing_ok=True)
    return report.path, removed


# SQLite ---------------------------------------------------------------------------------------


def _sqlite_path() -> Path:
    url = database_url()
    if not url.database or url.database == ":memory:" or url.query.get("mode") == "memory":
        raise BackupError("the configured SQLite database is not a file")
    return Path(url.database)


@contextlib.contextmanager
def _sqlite(path: Path | str, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    timeout = int(current_app.config.get("SQLITE_BUSY_TIMEOUT_MS", 10_000)) / 1000
    target = f"{Path(path).resolve().as_uri()}?mode=ro" if read_only else str(path)
    connection = sqlite3.connect(target, timeout=timeout, uri=read_only, isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def sqlite_integrity(connection: sqlite3.Connection) -> str:
    """ "ok", or the problems `integrity_check` and `foreign_key_check` found."""
    problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        return "; ".join(str(p) for p in problems[:20])
    orphans = connection.execute("PRAGMA foreign_key_check").fetchall()
    if orphans:
        return f"{len(orphans)} rows refer to rows that do not exist (first in {orphans[0][0]})"
    return "ok"


def sqlite_counts(connection: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {
        name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # noqa: S608
        for name in names
    }


def _sqlite_backup(partial: Path) -> BackupReport:
    with _sqlite(_sqlite_path()) as source, _sqlite(partial) as copy:
        # pages=-1 copies everything in one step, under one read transaction: one snapshot.
        source.backup(copy, pages=-1)
        copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        integrity = sqlite_integrity(copy)
        counts = sqlite_counts(copy)
    if integrity != "ok":
        raise BackupError(f"the backup failed its integrity check: {integrity}")
    return BackupReport(partial, integrity, counts)


def _sqlite_restore(source: Path, *, force: bool) -> BackupReport:
    try:
        with _sqlite(source, read_only=True) as backup:
            integrity = sqlite_integrity(backup)
            expected = sqlite_counts(backup)
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{source} is not an SQLite backup ({error})") from error
    if integrity != "ok":
        raise BackupError(f"the backup failed its integrity check: {integrity}")
    target = _sqlite_path()
    if target.resolve() == source.resolve():
        raise BackupError("the backup is the configured database itself")
    if target.exists() and not force:
        with _sqlite(target) as existing:
            if holds_data(sqlite_counts(existing)):
                raise BackupError(
                    "the database already holds data; restore into an empty one or pass --force"
                )
    # The service's pooled connections must not keep pages of the database being replaced.
    db.session.remove()
    db.engine.dispose()
    if not target.exists():
        _create_private(target)
    target.chmod(0o600)  # readable by the service's user only, like the backup it came from
    with _sqlite(source, read_only=True) as backup, _sqlite(target) as restored:
        backup.backup(restored, pages=-1)
        integrity = sqlite_integrity(restored)
        counts = sqlite_counts(restored)
    if integrity != "ok":
        raise BackupError(f"the restored database failed its integrity check: {integrity}")
    _check_counts(expected, counts)
    return BackupReport(target, integrity, counts)


# PostgreSQL -----------------------------------------------------------------------------------


def _pg_tool(program: str) -> tuple[list[str], dict[str, str]]:
    """The tool with the URL's host, port, user and database; the password goes in PGPASSWORD."""
    path = shutil.which(program)
    if path is None:
        raise BackupError(f"{program} is not installed (PostgreSQL client tools are needed)")
    url = database_url()
    args = [path, "--no-password"]
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    for key, variable in LIBPQ_ENVIRONMENT.items():
        value = url.query.get(key)
        if isinstance(value, str):
            env[variable] = value
    return args, env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-5:]
        password = database_url().password
        text = "; ".join(message) or f"exit status {result.returncode}"
        if password:
            text = text.replace(str(password), "***")
        raise BackupError(f"{Path(args[0]).name} failed: {text}")
    return result


_COPY = re.compile(r'^COPY (?:"?[\w$]+"?\.)?"?([^"\s(]+)"? ')
_TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA \S+ (\S+) ")


def archive_counts(archive: Path) -> dict[str, int]:
    """Rows per table in a custom-format archive, by reading all of its data back."""
    args, env = _pg_tool("pg_restore")
    listing = _run([*args[:2], "--list", str(archive)], env).stdout
    counts = {m.group(1): 0 for m in map(_TABLE_DATA.match, listing.splitlines()) if m}
    process = subprocess.Popen(  # noqa: S603
        [*args[:2], "--data-only", "--file=-", str(archive)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    current: str | None = None
    for line in process.stdout:
        if current is None:
            match = _COPY.match(line)
            if match:
                current = match.group(1)
                counts.setdefault(current, 0)
        elif line == "\\.\n":
            current = None
        else:
            counts[current] += 1
    _, errors = process.communicate()
    if process.returncode != 0:
        raise BackupError(f"the archive could not be read back: {errors.strip()[-500:]}")
    return dict(sorted(counts.items()))


def _postgresql_backup(partial: Path) -> BackupReport:
    args, env = _pg_tool("pg_dump")
    database = database_url().database or ""
    _run([*args, "--format=custom", f"--file={partial}", "--dbname", database], env)
    return BackupReport(partial, "ok", archive_counts(partial))


def _postgresql_restore(source: Path, *, force: bool) -> BackupReport:
    try:
        expected = archive_counts(source)
    except BackupError as error:
        raise BackupError(f"{source} is not a readable pg_dump archive ({error})") from error
    if holds_data(database_counts()) and not force:
        raise BackupError(
            "the database already holds data; restore into an empty one or pass --force"
        )
    db.session.remove()
    db.engine.dispose()
    args, env = _pg_tool("pg_restore")
    database = database_url().database or ""
    _run(
        [
            *args,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            "--dbname",
            database,
            str(source),
        ],
        env,
    )
    counts = database_counts()
    _check_counts(expected, counts)
    return BackupReport(source, "ok", counts)
