"""People's identifiers in free text: removed when a person is pseudonymised or erased, and
refused in text written for commissioners.

Notes, reasons and messages are typed by people, and name people: a register note about one
person may name another ("Sat with Sheila Payne"), a regeneration reason may name the person a
register was late for. When someone is pseudonymised or erased, every free-text column that may
hold prose is searched for their full name (either way round), NHS number (with and without
spaces), email and phone, and each is replaced with `[removed]`. A lone given or family name is
left: it would also remove other people's ("Ellie" in "Ellie Whitfield"). Their own records'
free text is removed whole (`referrals.retention`).

Rows are found in the database (`LIKE` over each column, for a whole batch of people at once),
so a bulk run over hundreds of people reads each table a few times, not once per person.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, literal, or_, select

from referrals.courses.models import Attendance, CourseSession, Enrolment
from referrals.extensions import db
from referrals.intake.models import ContactAttempt, Conversation, Patient, Referral
from referrals.intake.models import ReferralTransition as Transition
from referrals.intake.validation import format_nhs_number
from referrals.notifications.models import Notification, OutboundMessage
from referrals.reports.models import KpiReturn

REMOVED = "[removed]"
IDENTIFIERS_IN_REASON = "Reasons are read by commissioners: do not name people or give NHS numbers"

# Every column whose text is typed or composed by people and may name someone.
FREE_TEXT_COLUMNS: tuple[Any, ...] = (
    Referral.reason,
    Referral.risk_note,
    Referral.new_episode_reason,
    Transition.reason,
    Transition.note,
    ContactAttempt.note,
    Conversation.what_matters,
    Conversation.agreed_next_steps,
    Enrolment.withdrawn_reason,
    Attendance.note,
    CourseSession.cancelled_reason,
    Patient.communication_needs,
    Patient.access_needs,
    KpiReturn.reason,
    Notification.text,
    OutboundMessage.subject,
    OutboundMessage.body,
)
# Search terms per query: SQLite limits how deep one expression may nest.
TERMS_PER_QUERY = 100
# Ten digits in the NHS number's 3-3-4 grouping, spaces or hyphens allowed between groups.
NHS_NUMBER_SHAPE = re.compile(r"(?<!\d)\d{3}[\s-]?\d{3}[\s-]?\d{4}(?!\d)")


@dataclass(frozen=True)
class Identity:
    """What to look for: `terms` find candidate texts in the database (any case); `patterns`,
    whole words only, are what is replaced in them."""

    patient_id: int
    terms: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...]

    def named_in(self, text: str) -> bool:
        return any(pattern.search(text) for pattern in self.patterns)


def _whole(term: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)


def _digits_pattern(digits: str) -> str:
    """Digits in order, allowing spaces or hyphens between them (how people type numbers)."""
    return r"[\s-]?".join(re.escape(d) for d in digits)


def _still_named(patient: Patient) -> bool:
    # Once pseudonymised, the names are placeholders shared by everyone pseudonymised.
    return patient.anonymised_at is None


def identifier_patterns(patient: Patient) -> list[re.Pattern[str]]:
    """Patterns for the person's identifiers as they might be typed into free text."""
    patterns: list[str] = []
    names = [patient.given_name, patient.family_name] if _still_named(patient) else []
    names += [" ".join(names)] if names else []
    for name in sorted({n.strip() for n in names if n and len(n.strip()) >= 2}, key=len)[::-1]:
        patterns.append(rf"(?<!\w){re.escape(name)}(?!\w)")
    for number in (patient.nhs_number, patient.phone):
        digits = re.sub(r"\D", "", number or "")
        if len(digits) >= 6:
            patterns.append(_digits_pattern(digits))
    if patient.email:
        patterns.append(re.escape(patient.email))
    compact = re.sub(r"\s+", "", patient.postcode or "")
    if len(compact) >= 5:
        patterns.append(r"\s?".join([re.escape(compact[:-3]), re.escape(compact[-3:])]))
    if patient.date_of_birth:
        born = patient.date_of_birth
        shapes = {
            born.isoformat(),
            f"{born.day}/{born.month}/{born.year}",
            f"{born.day:02d}/{born.month:02d}/{born.year}",
            f"{born.day} {born:%B %Y}",
            f"{born.day} {born:%b %Y}",
        }
        patterns += [re.escape(shape) for shape in shapes]
    return [re.compile(p, re.IGNORECASE) for p in patterns]


def _full_names(patient: Patient) -> list[str]:
    if not _still_named(patient):
        return []
    given, family = patient.given_name.strip(), patient.family_name.strip()
    return [f"{given} {family}", f"{family}, {given}"]


def naming_patterns(patient: Patient) -> list[re.Pattern[str]]:
    """Patterns for what names the person in someone else's text: their full name (either way
    round), NHS number, phone or email. A lone given name would also remove other people's."""
    patterns = [_whole(name) for name in _full_names(patient)]
    for number in (patient.nhs_number, patient.phone):
        digits = re.sub(r"\D", "", number or "")
        if len(digits) >= 6:
            patterns.append(re.compile(rf"(?<!\d){_digits_pattern(digits)}(?!\d)"))
    if patient.email:
        patterns.append(_whole(patient.email))
    return patterns


def search_terms(patient: Patient) -> list[str]:
    """Strings that mark a text as naming the person (a lone first name would match many)."""
    values: list[str | None] = [patient.email, patient.phone, *_full_names(patient)]
    if patient.nhs_number:
        spaced = format_nhs_number(patient.nhs_number)
        values += [patient.nhs_number, spaced, spaced.replace(" ", "-")]
    return [v for v in dict.fromkeys(values) if v and len(v) >= 5]


def identity_of(patient: Patient) -> Identity:
    return Identity(patient.id, tuple(search_terms(patient)), tuple(naming_patterns(patient)))


def redact(text: str, patterns: Iterable[re.Pattern[str]]) -> str:
    for pattern in patterns:
        text = pattern.sub(REMOVED, text)
    return text


def _texts_naming(column: Any, terms: Sequence[str]) -> Iterator[Any]:
    """Rows of `column`'s table whose text contains any of `terms`, in any case."""
    model = column.class_
    folded = func.lower(column)
    for start in range(0, len(terms), TERMS_PER_QUERY):
        chunk = terms[start : start + TERMS_PER_QUERY]
        # One bound pattern a term: building 17 columns x 500 terms of expressions is the cost.
        found = select(model).where(
            column != "",
            or_(*(folded.like(_like_pattern(term), escape="/") for term in chunk)),
        )
        yield from db.session.scalars(found)


def _like_pattern(term: str) -> str:
    escaped = term.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def remove_from_free_text(identities: Sequence[Identity]) -> Counter[int]:
    """Replace the identifiers of everyone in `identities` wherever free text names them.

    Returns, per person (patient id), how many texts named them.
    """
    terms = sorted({term for identity in identities for term in identity.terms})
    named: Counter[int] = Counter()
    if not terms:
        return named
    for column in FREE_TEXT_COLUMNS:
        seen: set[int] = set()
        for row in _texts_naming(column, terms):
            if id(row) in seen:  # a row matching terms in two chunks is changed once
                continue
            seen.add(id(row))
            text = getattr(row, column.key)
            for identity in identities:
                if identity.named_in(text):
                    text = redact(text, identity.patterns)
                    named[identity.patient_id] += 1
            setattr(row, column.key, text)
    db.session.flush()
    return named


# Text written for commissioners -------------------------------------------------------------


def names_people_in(text: str, people: Select[Any]) -> bool:
    """Whether `text` gives an NHS number, or the full name of anyone among `people` (a query
    of patient ids)."""
    if NHS_NUMBER_SHAPE.search(text):
        return True
    folded = text.casefold()
    full_name = func.lower(Patient.given_name + " " + Patient.family_name)
    # The database narrows to the names contained in the text; whole words are checked here.
    candidates = db.session.execute(
        select(Patient.given_name, Patient.family_name).where(
            Patient.id.in_(people),
            Patient.anonymised_at.is_(None),
            literal(folded).contains(full_name),
        )
    ).all()
    return any(_whole(f"{given} {family}").search(text) for given, family in candidates)
