"""Access-history entries a reading page could not write at once, kept as files until moved in.

A page that shows a person's data records it (`referrals.audit.record_view`). When another
process holds the database's write lock (SQLite has one, and `flask kpi regenerate` or a backup
may hold it for seconds), the page neither waits nor fails: its entries are written here, one
file per page, synced to disk before the page is answered, and moved into the audit table by
the next entry written at once or by a writing request, job or command (`move_spooled_in`).
An entry keeps the time it was made; only its row id is later than its neighbours'.

Why files, not a second table: the database is the thing that is busy. A second SQLite file
would work too but adds a schema of its own; the entries are small JSON documents, and a
folder on the same disk as the instance is always there.

Moving in is at-least-once: files are claimed by an atomic rename (so two workers never move
the same file), removed after the transaction that inserted them has committed, and released
if it failed. A process that dies between commit and removal leaves a claimed file, which is
taken up again after `STALE_CLAIM` and may then appear twice: a repeated entry, never a lost one.
A file that cannot be moved in (not entries, or naming an actor since deleted) is set aside under
a name ending `.set-aside` and logged as an error, so it never fails the pages that move the
spool in; it stays for someone to look at.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import current_app

SUFFIX = ".json"
CLAIMED = ".claimed"
SET_ASIDE = ".set-aside"  # entries that could not be moved in: kept for someone to look at
STALE_CLAIM = 600  # seconds: a claim this old belongs to a process that died
_AT = "at"


def folder() -> Path:
    configured = current_app.config.get("AUDIT_SPOOL_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "audit-spool"


def keep(spool: Path, rows: list[dict[str, Any]]) -> Path:
    """Write the rows durably as one new file (written aside, synced, then renamed in)."""
    spool.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex}"
    partial = spool / f".{name}.tmp"
    document = [{**row, _AT: row[_AT].isoformat()} for row in rows]
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        json.dump(document, out, separators=(",", ":"))
        out.flush()
        os.fsync(out.fileno())
    final = spool / f"{name}{SUFFIX}"
    os.replace(partial, final)
    _sync_folder(spool)
    return final


def claim(spool: Path) -> list[Path]:
    """Take every waiting file (and any stale claim) for this process, oldest first."""
    try:
        entries = list(os.scandir(spool))
    except FileNotFoundError:
        return []
    if not entries:
        return []
    claimed = []
    now = time.time()
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.name.endswith(SUFFIX):
            waiting = entry.name
        elif CLAIMED in entry.name and _claim_age(entry, now) > STALE_CLAIM:
            waiting = entry.name.split(CLAIMED)[0]
        else:
            continue
        target = spool / f"{waiting}{CLAIMED}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(entry.path, target)
        except FileNotFoundError:  # another process claimed it first
            continue
        os.utime(target)  # the claim's age, not the entry's
        claimed.append(target)
    return claimed


def _claim_age(entry: os.DirEntry[str], now: float) -> float:
    """Seconds since the claim was made; 0 for a claim another worker has meanwhile discarded
    or released (workers list the folder and change it concurrently)."""
    try:
        return now - entry.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def read(claimed: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in claimed:
        for row in json.loads(path.read_text()):
            rows.append({**row, _AT: datetime.fromisoformat(row[_AT])})
    return rows


def release(claimed: list[Path]) -> None:
    """Give the files back for a later move (the transaction that read them failed)."""
    for path in claimed:
        os.replace(path, path.with_name(path.name.split(CLAIMED)[0]))


def set_aside(path: Path) -> None:
    """Keep a claimed file that cannot be moved in under a name no claim takes."""
    os.replace(path, path.with_name(path.name.split(CLAIMED)[0] + SET_ASIDE))


def discard(claimed: list[Path]) -> None:
    """Remove files whose entries are committed."""
    for path in claimed:
        path.unlink(missing_ok=True)


def waiting(spool: Path) -> int:
    """How many files wait to be moved in (claimed ones included, set-aside ones not)."""
    try:
        return sum(
            1
            for entry in os.scandir(spool)
            if not entry.name.startswith(".") and not entry.name.endswith(SET_ASIDE)
        )
    except FileNotFoundError:
        return 0


def _sync_folder(spool: Path) -> None:
    descriptor = os.open(spool, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
