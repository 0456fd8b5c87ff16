"""The erasure ledger: every erasure on request, kept outside the database so that a restore
cannot bring an erased person back.

The ledger is an append-only file of JSON lines (`ERASURE_LEDGER_PATH`, by default
`instance/erasures.jsonl`), readable by the service's user only. Each line holds only what is
needed to find the person again in an older copy of the database: their internal person id, a
keyed hash of their NHS number (HMAC-SHA256 under the service's `SECRET_KEY`, never the number
itself) and when they were erased. A copy is written beside every backup. A restore re-applies
every erasure in the ledger (and in the copy beside the backup) that the restored database does
not already hold, before the service starts on it (see `reapply_erasures`).

Erase through `erase_and_remember`, never `retention.erase_patient` alone: the line is written
before the erasure commits, so an erasure is never lost from the ledger; a line whose erasure
did not commit only means erasing again someone who asked to be erased.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import exists, select

from referrals.audit import AuditEvent, record
from referrals.db import utcnow
from referrals.extensions import db
from referrals.intake.models import Patient
from referrals.retention import erase_patient

LEDGER_SUFFIX = ".erasures.jsonl"  # the copy beside a backup: <backup file>.erasures.jsonl


@dataclass(frozen=True)
class Erasure:
    person_id: int
    nhs_number_hash: str | None
    erased_at: str  # ISO 8601, UTC

    def line(self) -> str:
        return json.dumps(
            {
                "person_id": self.person_id,
                "nhs_number_hash": self.nhs_number_hash,
                "erased_at": self.erased_at,
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class Reapplied:
    """What a restore did with the ledger: erased again, already erased, not in the backup."""

    erased: list[int]
    already: int
    absent: int

    def as_detail(self) -> dict[str, Any]:
        return {
            "erasures_reapplied": len(self.erased),
            "erasures_already_applied": self.already,
            "erasures_not_in_backup": self.absent,
        }


def ledger_path() -> Path:
    configured = current_app.config.get("ERASURE_LEDGER_PATH")
    return Path(configured) if configured else Path(current_app.instance_path) / "erasures.jsonl"


def nhs_number_hash(nhs_number: str | None) -> str | None:
    """A keyed hash: without the service's secret, nobody can test NHS numbers against it."""
    if not nhs_number:
        return None
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"nhs-number:{nhs_number}".encode(), hashlib.sha256).hexdigest()


def _append(path: Path, lines: list[str]) -> None:
    """Append whole lines to a file only its owner can read, and make them durable."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, "".join(f"{line}\n" for line in lines).encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_ledger(path: Path) -> list[Erasure]:
    """The erasures in a ledger file, oldest first; a missing file holds none. A line cut short
    by a crash is skipped (the erasure it began was re-tried by whoever asked)."""
    if not path.is_file():
        return []
    found = []
    for text in path.read_text().splitlines():
        try:
            entry = json.loads(text)
            found.append(
                Erasure(int(entry["person_id"]), entry.get("nhs_number_hash"), entry["erased_at"])
            )
        except (ValueError, KeyError, TypeError):
            continue
    return found


def erase_and_remember(actor: Any, patient: Patient, reason: str) -> None:
    """Erase `patient` (see `retention.erase_patient`) and add the erasure to the ledger."""
    entry = Erasure(patient.id, nhs_number_hash(patient.nhs_number), utcnow().isoformat())
    erase_patient(actor, patient, reason)  # refuses before anything is written without a reason
    _append(ledger_path(), [entry.line()])


def copy_beside(backup: Path) -> Path:
    """Write the ledger beside a backup (`<backup>.erasures.jsonl`), readable by its owner."""
    copy = backup.with_name(backup.name + LEDGER_SUFFIX)
    copy.unlink(missing_ok=True)
    source = ledger_path()
    _append(copy, [e.line() for e in read_ledger(source)] if source.is_file() else [])
    return copy


def _already_erased(person_id: int) -> bool:
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    AuditEvent.subject_person_id == person_id, AuditEvent.action == "patient.erased"
                )
            )
        )
    )


def _find(entry: Erasure, by_hash: Callable[[], dict[str, int]]) -> Patient | None:
    """The person by id, if their NHS number (when they have one) matches; otherwise by NHS
    number alone, for a database whose ids differ (built again from another copy)."""
    patient = db.session.get(Patient, entry.person_id)
    if patient is not None and (
        patient.nhs_number is None
        or entry.nhs_number_hash is None
        or nhs_number_hash(patient.nhs_number) == entry.nhs_number_hash
    ):
        return patient
    if entry.nhs_number_hash:
        found = by_hash().get(entry.nhs_number_hash)
        return db.session.get(Patient, found) if found is not None else None
    return None


def _hashes() -> dict[str, int]:
    rows = db.session.execute(
        select(Patient.nhs_number, Patient.id).where(Patient.nhs_number.is_not(None))
    )
    return {str(nhs_number_hash(number)): person for number, person in rows}


def reapply_erasures(actor: Any, beside: Path | None = None, *, restored: str = "") -> Reapplied:
    """Erase again everyone in the ledger (and in the copy `beside` a backup) whom the restored
    database still holds unerased; each is audited as re-applied. The caller commits. The
    ledger afterwards holds both, so it is whole again on a new machine."""
    own = read_ledger(ledger_path())
    extra = read_ledger(beside) if beside is not None else []
    known = {e.line() for e in own}
    missing = [e for e in extra if e.line() not in known]
    if missing:
        _append(ledger_path(), [e.line() for e in missing])
    entries = {(e.person_id, e.nhs_number_hash): e for e in [*extra, *own]}.values()
    erased: list[int] = []
    already = absent = 0
    hashes: dict[str, int] = {}

    def by_hash() -> dict[str, int]:
        # Only when an id does not match: hashing everyone's NHS number reads every person.
        if not hashes:
            hashes.update(_hashes())
        return hashes

    for entry in sorted(entries, key=lambda e: e.erased_at):
        patient = _find(entry, by_hash)
        if patient is None:
            absent += 1
            continue
        if _already_erased(patient.id):
            already += 1
            continue
        erase_patient(
            actor, patient, f"Erased on {entry.erased_at[:10]}; re-applied after a restore"
        )
        record(
            actor,
            "patient.erasure_reapplied",
            patient,
            erased_at=entry.erased_at,
            backup=restored,
        )
        erased.append(patient.id)
    return Reapplied(erased, already, absent)
