"""Who has seen this person? Every view and change of one person's data, from the audit log.

An audit entry names the person it is about (`AuditEvent.subject_person_id`, set when it is
written, whichever of their records it names), so one person's history is a single index range,
read newest first. Each entry says who (name, role, organisation), when (UK time), from where
(the address, and the page, download, API, command or job) and what, in plain words. The
history can be downloaded as CSV for a subject access request; the page and the download are
themselves audited.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, select
from werkzeug.routing import Rule

from referrals import clock
from referrals.audit import AuditEvent
from referrals.auth.models import Organisation, User
from referrals.exports import safe_cell
from referrals.extensions import db
from referrals.pagination import Page

# What an entry about a person means, in plain words (any other action is shown as recorded).
ACTION_WORDS = {
    "patient.viewed": "Saw the person's details",
    "patient.updated": "Changed the person's details",
    "patient.reconciliation_opened": "Kept details another practice sent, to be checked",
    "patient.reconciled": "Checked details another practice sent",
    "patient.messages_stopped": "Stopped emails and text messages to the person",
    "patient.anonymised": "Anonymised the person's record",
    "patient.pseudonymised": "Pseudonymised the person's record",
    "patient.erased": "Erased the person's record",
    "patient.erasure_reapplied": "Erased the person's record again after a restore",
    "patient.access_history_viewed": "Saw who has seen this person",
    "patient.access_history_exported": "Downloaded who has seen this person",
    "referral.viewed": "Saw the person's referral",
    "referral.listed": "Saw the person in a list or search result",
    "referral.created": "Made a referral for the person",
    "referral.transition": "Changed the referral's status",
    "referral.contact_logged": "Recorded an attempt to contact the person",
    "referral.conversation_recorded": "Recorded a conversation with the person",
    "referral.assigned": "Assigned the referral to a link worker",
    "referral.letter_downloaded": "Downloaded the letter to the person's GP practice",
    "referral.self_referral_repeated": "The person referred themselves again",
    "referral.duplicate_refused": "A second referral for the person was refused",
    "enrolment.viewed": "Saw the person's place on a course",
    "enrolment.created": "Gave the person a place on a course",
    "enrolment.withdrawn": "Withdrew the person from a course",
    "enrolment.offered_place": "Offered the person a place on a course",
    "enrolment.offer_accepted": "Accepted a place on a course for the person",
    "enrolment.offer_declined": "Declined a place on a course for the person",
    "enrolment.offer_expired": "The offer of a place expired",
    "course.people_viewed": "Saw the person on a course's page",
    "register.viewed": "Saw the person on a session's register",
    "register.saved": "Recorded the person's attendance",
    "register.printed": "Printed a register naming the person",
    "register.template_downloaded": "Downloaded a register naming the person",
    "registers.kept_on_device": "Kept a register naming the person on a device, for offline use",
    "wellbeing.recorded": "Recorded the person's wellbeing questionnaire",
}

FILE_ENDINGS = (".pdf", ".csv", ".xlsx", ".json", ".zip")


def describe_action(action: str) -> str:
    return ACTION_WORDS.get(action, action)


def _rule(endpoint: str) -> Rule | None:
    try:
        rules = current_app.url_map.iter_rules(endpoint)
        return next(iter(rules), None)
    except KeyError:  # an endpoint since removed
        return None


def describe_source(source: str | None, detail: dict[str, Any]) -> str:
    """Where it happened: the page, download or API address; the command; or the job."""
    if source and source.startswith("command "):
        by = f" (run by {detail['os_user']})" if detail.get("os_user") else ""
        return f"Command line: {source.removeprefix('command ')}{by}"
    if source and source.startswith("job "):
        return f"Scheduled job: {source.removeprefix('job ')}"
    if source:
        rule = _rule(source)
        path = rule.rule if rule is not None else source
        if source.startswith("api."):
            return f"API: {path}"
        if path.endswith(FILE_ENDINGS):
            return f"Download: {path}"
        return f"Page: {path}"
    # Entries written before the source was recorded.
    if detail.get("job"):
        return f"Scheduled job: {detail['job']}"
    if detail.get("command"):
        return f"Command line: {detail['command']}"
    if detail.get("via"):
        return f"Page or API ({str(detail['via']).replace('_', ' ')})"
    return "Not recorded"


def london_day_bounds(since: date | None, until: date | None) -> tuple[datetime | None, ...]:
    """UTC instants from the start of `since` to the end of `until`, both UK dates."""

    def start_of(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=clock.zone()).astimezone(UTC)

    return (
        start_of(since) if since else None,
        start_of(until + timedelta(days=1)) if until else None,
    )


def in_dates(query: Select[Any], since: date | None, until: date | None) -> Select[Any]:
    start, end = london_day_bounds(since, until)
    if start is not None:
        query = query.where(AuditEvent.at >= start)
    if end is not None:
        query = query.where(AuditEvent.at < end)
    return query


def newest_first(query: Select[Any]) -> Select[Any]:
    return query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())


def with_actors(query: Select[Any]) -> Select[Any]:
    """Entries with who acted and their organisation, in the one query."""
    return (
        query.add_columns(User, Organisation)
        .outerjoin(User, AuditEvent.actor_id == User.id)
        .outerjoin(Organisation, Organisation.id == User.organisation_id)
    )


def entries_by_id(ids: Sequence[int]) -> list[Any]:
    """(entry, actor, organisation) for each id, in the ids' order: one query for a page."""
    rows = db.session.execute(with_actors(select(AuditEvent)).where(AuditEvent.id.in_(ids)))
    found = {row[0].id: row for row in rows}
    return [found[i] for i in ids if i in found]


def entries_page(query: Select[Any], per_page: int = 50) -> Page:
    """The requested page of `query` (entries, newest first), with who acted. The count and
    the page's place are read from the entries' ids alone, along an index (see `AuditEvent`);
    the page's rows are then loaded with their actors."""
    return Page.of_keys(query, AuditEvent.id, entries_by_id, per_page=per_page)


def history_query(person_id: int, since: date | None, until: date | None) -> Select[Any]:
    """Every entry about the person, newest first."""
    about = select(AuditEvent).where(AuditEvent.subject_person_id == person_id)
    return newest_first(in_dates(about, since, until))


@dataclass(frozen=True)
class HistoryLine:
    """One entry, as the page and the download show it."""

    at: datetime
    who: str
    role: str
    organisation: str
    address: str
    source: str
    what: str
    action: str
    record: str

    @classmethod
    def of(cls, event: AuditEvent, actor: User | None, organisation: Organisation | None) -> Any:
        return cls(
            at=event.at,
            who=actor.name if actor else _no_one(event),
            role=actor.role.label if actor else "",
            organisation=organisation.name if organisation else "",
            address=event.ip_address or "Not recorded",
            source=describe_source(event.source, event.detail or {}),
            what=describe_action(event.action),
            action=event.action,
            record=f"{event.object_type} {event.object_id}" if event.object_id else "",
        )


def _no_one(event: AuditEvent) -> str:
    detail = event.detail or {}
    if detail.get("job") or (event.source or "").startswith("job "):
        return "The service (scheduled job)"
    if detail.get("os_user"):
        return f"Operating-system user {detail['os_user']}"
    return "The person, or a visitor not signed in"


def lines(rows: Iterable[Any]) -> list[HistoryLine]:
    return [HistoryLine.of(event, actor, organisation) for event, actor, organisation in rows]


CSV_HEADER = (
    "When (UK time)",
    "Who",
    "Role",
    "Organisation",
    "Address",
    "Where",
    "What",
    "Action",
    "Record",
)


def history_csv(history: Iterable[HistoryLine]) -> bytes:
    """The history as CSV, every cell safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for line in history:
        cells = (
            line.at.astimezone(clock.zone()).strftime("%Y-%m-%d %H:%M:%S"),
            line.who,
            line.role,
            line.organisation,
            line.address,
            line.source,
            line.what,
            line.action,
            line.record,
        )
        writer.writerow([safe_cell(cell) for cell in cells])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
