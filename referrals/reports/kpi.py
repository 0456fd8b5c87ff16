"""The KPI engine: every figure of the KPI specification (v2) for one scope and period.

Sections B, C and E are computed for the month, the financial year to date and the contract to
date, each afresh over its own span (distinct people, medians and means over the span's records,
never sums of months). The records are aggregated in SQL, once for every span: attendance by
enrolment (and by the part of the widest span it falls in), sessions by course, outcome scores
by enrolment; Python adds those into each span, counts each span's distinct people and takes
the median of B3's waits (one value per new starter). The number of queries is fixed, whatever
the size of the data (one more where someone attended another course's session, for B7). The
engine returns true figures; `publish` applies the small-number rule for commissioners and rates
figures against targets. Decisions the specification leaves open are written in docs/kpi.md.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import reduce
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on

from referrals.courses.kpi_targets import DIRECTIONS, target_for
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    SessionStatus,
)
from referrals.extensions import db
from referrals.intake.lifecycle import CLOSING_STATUSES, OPEN_STATUSES, Status
from referrals.intake.models import Patient, Referral, ReferralTransition
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import (
    MEANINGFUL_CHANGE,
    SWEMWBS_ITEMS_IN_WEMWBS,
    SWEMWBS_METRIC,
    Instrument,
    Timepoint,
)
from referrals.reports.periods import Period, Scope, Span, Window, windows
from referrals.reports.rules import (
    SUPPRESSED,
    Family,
    Kind,
    Shown,
    percentage,
    protect_breakdowns,
    protect_percentage,
    protect_statistic,
    rate,
    round_count,
)
from referrals.vocab import Ethnicity, Pathway, ReferrerType, Sex

SPEC_VERSION = "2"

NAMES = {
    "A1": "Referrals received",
    "A2": "Referrals closed without starting",
    "A3": "Open referrals waiting",
    "B1": "Number of people supported to access arts or cultural groups/activities",
    "B2": "New starters",
    "B3": "Median wait to start (days)",
    "B4": "Sessions delivered",
    "B5": "Attendances",
    "B6": "Attendance rate (%)",
    "B7": "Completions",
    "C0": "Questionnaire completeness (%)",
    "C1": "Paired outcomes",
    "C2": "Mean baseline score",
    "C3": "Mean end score",
    "C4": "Mean change",
    "C5": "Improved (%)",
    "C6": "Worsened (%)",
    "C7": "Session mood uplift",
    "C8": "Follow-up pairs",
    "C9": "Mean change at follow-up",
    "D1": "People supported by age band",
    "D2": "People supported by sex",
    "D3": "People supported by ethnic group",
    "E1": "Cost of sessions delivered (£)",
    "E2": "Cost per person supported (£)",
    "E3": "Cost per attendance (£)",
    "E4": "Cost per completion (£)",
}
HEADLINE_CODES = ("A1", "B1", "B2", "B4", "B6", "B7", "C4", "C5", "E2")
# SWEMWBS metric means are read against the scale and the population (docs/kpi.md).
SWEMWBS_CODES = frozenset({"C2", "C3"})
SWEMWBS_RANGE = (7, 35)
SWEMWBS_NATIONAL_MEAN = Decimal("23.5")  # Health Survey for England, adults
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+")
CLOSE_REASONS = ("declined", "unable_to_contact", "not_suitable", "did_not_start", "other")
TWO = Decimal("0.01")
ONE = Decimal("0.1")
MONTH = Span.MONTH.value


@dataclass(frozen=True)
class Figure:
    """One KPI cell. `breakdown` is "" for the headline, else "dimension=value"."""

    code: str
    kind: Kind
    value: int | Decimal | None
    breakdown: str = ""
    span: str = MONTH
    people: int | None = None  # how many people a mean, median or cost per head is over
    numerator: int | None = None  # percentages keep their true counts
    denominator: int | None = None

    @property
    def name(self) -> str:
        return NAMES[self.code]


@dataclass(frozen=True)
class Result:
    scope_key: str
    period: str
    spec_version: str
    figures: list[Figure] = field(default_factory=list)

    def get(self, code: str, breakdown: str = "", span: str = MONTH) -> Figure:
        return next(
            f
            for f in self.figures
            if f.code == code and f.breakdown == breakdown and f.span == span
        )


# Scope helpers --------------------------------------------------------------------------


def _courses_in(scope: Scope) -> Any:
    """A WHERE clause on Course for the scope."""
    return literal(True) if scope.is_all else Course.contract_id == scope.contract_id


def _sessions_in(scope: Scope, window: Window) -> Any:
    return and_(
        CourseSession.date >= window.start, CourseSession.date <= window.end, _courses_in(scope)
    )


def _attended_at_delivered() -> Any:
    return and_(
        Attendance.status == AttendanceStatus.ATTENDED,
        CourseSession.status == SessionStatus.DELIVERED,
    )


def _among(column: Any, ids: list[int]) -> Any:
    """`column IN ids`. On PostgreSQL the ids go as one array parameter: a parameter per id
    costs more to render, send and parse than the lookups they select."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


def _rows(query: Select[*tuple[Any, ...]]) -> Sequence[Any]:
    """The rows of a Core select, run on the session's connection: plain tuples, no ORM
    result processing."""
    return db.session.connection().execute(query).all()


def _count(query: Select[*tuple[Any, ...]]) -> int:
    return int(db.session.connection().scalar(query) or 0)


def _quantised(total: Any, count: int, exponent: Decimal = TWO) -> Decimal | None:
    if not count or total is None:
        return None
    return (Decimal(str(total)) / count).quantize(exponent, rounding=ROUND_HALF_UP)


# Section A: referrals (always scheme-wide) ------------------------------------------------


def _section_a(period: Period) -> list[Figure]:
    """Section A, scheme-wide, for the month only."""
    in_period = and_(Referral.received_on >= period.start, Referral.received_on <= period.end)
    by_type: dict[Any, int] = {}
    by_pathway: dict[Any, int] = {}
    for referrer_type, pathway, count in _rows(
        select(Referral.referrer_type, Referral.pathway, func.count())
        .where(in_period)
        .group_by(Referral.referrer_type, Referral.pathway)
    ):
        by_type[referrer_type] = by_type.get(referrer_type, 0) + count
        by_pathway[pathway] = by_pathway.get(pathway, 0) + count
    figures = [Figure("A1", Kind.COUNT, sum(by_type.values()))]
    figures += [
        Figure("A1", Kind.COUNT, by_type.get(t, 0), f"referrer_type={t.value}")
        for t in ReferrerType
    ]
    figures += [
        Figure("A1", Kind.COUNT, by_pathway.get(p, 0), f"pathway={p.value}") for p in Pathway
    ]

    # Both A2 and A3 judge each referral as it stood at the end of the month, from its
    # lifecycle history: its last status change on or before that day (`_latest_steps`).
    # Only the referrals that could count are kept: open at the month's end (A3), or closed
    # by a change in the month (A2); only those few are then checked for an attendance. One
    # statement gives both.
    latest = _latest_steps(period)
    attended_by_end = exists().where(
        Enrolment.referral_id == latest.c.referral_id,
        Attendance.enrolment_id == Enrolment.id,
        Attendance.session_id == CourseSession.id,
        _attended_at_delivered(),
        CourseSession.date <= period.end,
    )
    in_month = latest.c.effective_on >= period.start
    by_status: dict[tuple[Status, bool], int] = {}
    for status, changed_in_month, count in _rows(
        select(latest.c.to_status, in_month, func.count())
        .select_from(latest)
        .join(Referral, Referral.id == latest.c.referral_id)
        .where(
            Referral.received_on <= period.end,
            or_(
                latest.c.to_status.in_(OPEN_STATUSES),
                and_(latest.c.to_status.in_(CLOSING_STATUSES), in_month),
            ),
            ~attended_by_end,
        )
        .group_by(latest.c.to_status, in_month)
    ):
        key = (Status(status), bool(changed_in_month))
        by_status[key] = by_status.get(key, 0) + count

    # A2: closed by its last change, made during the month, never having attended.
    by_reason: dict[str, int] = {}
    for (status, changed_in_month), count in by_status.items():
        if status in CLOSING_STATUSES and changed_in_month:
            reason = "other" if status is Status.WITHDRAWN else status.value
            by_reason[reason] = by_reason.get(reason, 0) + count
    figures.append(Figure("A2", Kind.COUNT, sum(by_reason.values())))
    figures += [
        Figure("A2", Kind.COUNT, by_reason.get(r, 0), f"close_reason={r}") for r in CLOSE_REASONS
    ]
    # A3: open at the month's end, never having attended.
    waiting = sum(n for (status, _), n in by_status.items() if status in OPEN_STATUSES)
    figures.append(Figure("A3", Kind.COUNT, waiting))
    return figures


def _latest_steps(period: Period) -> Any:
    """The last status change on or before the month's end (by date, then the order the
    changes were recorded) of every referral that could count in A2 or A3: `referral_id`,
    `to_status`, `effective_on`.

    PostgreSQL reads every referral's from one ordered pass along
    `ix_referral_transition_referral_id_effective_on_status`, backwards (DISTINCT ON): the
    index holds every column, so that is a few thousand pages however many referrals there
    are, where a lookup per referral reads a few pages for each.

    SQLite is answered faster by one probe of that index per referral (0.06 s of CPU at
    100,000 referrals, against 0.14 s for the cheapest set-based form, a grouped maximum, and
    0.6 s for a window function, which SQLite materialises): its lookups cost no round trip
    or page pins, and its aggregates and window functions run row by row in its interpreter.
    It probes the referrals received by the month's end for A3, and those changed in the
    month for A2.
    """
    step = ReferralTransition
    if db.session.get_bind().dialect.name == "postgresql":
        return (
            select(step.referral_id, step.to_status, step.effective_on)
            .where(step.effective_on <= period.end)
            .ext(distinct_on(step.referral_id))
            .order_by(step.referral_id.desc(), step.effective_on.desc(), step.id.desc())
            .subquery("latest")
        )

    def last(column: Any) -> Any:
        return (
            select(column)
            .where(step.referral_id == Referral.id, step.effective_on <= period.end)
            .order_by(step.effective_on.desc(), step.id.desc())
            .limit(1)
            .correlate(Referral)
            .scalar_subquery()
        )

    status, changed_on = last(step.to_status), last(step.effective_on)
    changed_in_month = select(step.referral_id).where(
        step.effective_on >= period.start, step.effective_on <= period.end
    )
    waiting = select(
        Referral.id.label("referral_id"),
        status.label("to_status"),
        literal(None, Date).label("effective_on"),  # not needed for A3
    ).where(Referral.received_on <= period.end, status.in_(OPEN_STATUSES))
    closed = select(Referral.id, status, changed_on).where(
        Referral.id.in_(changed_in_month),
        status.in_(CLOSING_STATUSES),
        changed_on >= period.start,
    )
    return waiting.union_all(closed).subquery("latest")


# Sections B, C and E over every span at once ------------------------------------------------
#
# Every span ends with the period, so a span is "on or after its start": each query below reads
# the rows of the widest span once and counts them into every span with a condition on the date.


@dataclass
class _Tally:
    """One span's attendance figures, counted from per-enrolment rows."""

    people: set[int] = field(default_factory=set)
    recorded_people: set[int] = field(default_factory=set)
    mood_people: set[int] = field(default_factory=set)
    attendances: int = 0
    records: int = 0
    mood_records: int = 0
    mood_total: int | None = None
    waits: list[int] = field(default_factory=list)


def _merged(parts: list[_Tally]) -> _Tally:
    """One tally for the records of every part given."""
    moods = [part.mood_total for part in parts if part.mood_total is not None]
    return _Tally(
        people=set().union(*(part.people for part in parts)),
        recorded_people=set().union(*(part.recorded_people for part in parts)),
        mood_people=set().union(*(part.mood_people for part in parts)),
        attendances=sum(part.attendances for part in parts),
        records=sum(part.records for part in parts),
        mood_records=sum(part.mood_records for part in parts),
        mood_total=sum(moods) if moods else None,
    )


@dataclass(frozen=True)
class _Person:
    """Someone supported in the month (B1): their first attended session in it, and who they
    are for section D."""

    first_on: date
    born: date | None
    sex: Any
    ethnicity: Any


# An enrolment's attended records at delivered sessions read by the attendance pass (at any
# date up to the period's end), for B7: its own course, how many, and whether any was at
# another course's session. A tuple: one is made for each of up to 16,000 enrolments.
_Attended = tuple[int, int, bool]


def _attendance_tallies(
    scope: Scope, spans: list[Window]
) -> tuple[list[_Tally], dict[int, _Person], dict[int, _Attended]]:
    """B1, B2, B3, B5, B6 and C7 for every span from one pass over the widest span's records
    (two queries), and the people supported in the month for section D.

    The records are grouped by enrolment, by whether they are attendances, and by the part of
    the widest span they fall in (split at each span's start), so that each record is looked
    at once. An enrolment started in a span when its first attended delivered session in scope
    falls in it. Whether it had attended before the widest span began is read in the same
    pass: its course's earlier attendances are grouped into a part of their own (0), counted
    in no span. A register lists only its own course's enrolments, so an enrolment that
    attended in the widest span attended before it, if at all, at a course that met in it.
    Those groups are then gathered into one row per enrolment (a column for each part), so
    that each enrolment's referral and person are looked up once, and each part's people are
    counted once; a span's tally is the union of its parts'.

    The same rows carry each enrolment's attended records at delivered sessions over the whole
    pass, with the courses whose sessions they were, from which B7 is counted (`_completed`).
    """
    starts = sorted({w.start for w in spans})
    end = spans[0].end
    # Part i + 1 runs from starts[i] to the next start (the last to the end); part 0 is before.
    part = case(
        *((CourseSession.date >= starts[i], i + 1) for i in reversed(range(len(starts)))),
        else_=0,
    )
    went = case((_attended_at_delivered(), 1), else_=0)
    mood_change = Attendance.mood_after - Attendance.mood_before  # NULL unless both recorded
    # The in-scope courses with a session in the widest span, fetched first (one query): a
    # list of ids lets the planner find their sessions, and then their records, by index.
    meeting = _rows(
        select(CourseSession.course_id)
        .join(Course, Course.id == CourseSession.course_id)
        .where(CourseSession.date >= starts[0], CourseSession.date <= end, _courses_in(scope))
        .distinct()
    )
    groups = (
        select(
            Attendance.enrolment_id,
            part.label("part"),
            went.label("went"),
            func.count().label("records"),
            func.count(mood_change).label("moods"),
            func.sum(mood_change).label("mood_total"),
            func.min(CourseSession.date).label("first_on"),
            CourseSession.course_id.label("met_id"),
        )
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .where(
            _among(CourseSession.course_id, [course_id for (course_id,) in meeting]),
            CourseSession.date <= end,
            or_(CourseSession.date >= starts[0], _attended_at_delivered()),
        )
        .group_by(Attendance.enrolment_id, part, went, CourseSession.course_id)
        .subquery()
    )
    # Then one row per enrolment, so that it is joined to its referral and person once: for
    # each part of the widest span its records, attendances, moods and their total, and the
    # first attended session (anywhere, and in the month).
    month = len(starts)  # the month is the latest start: the last part
    attended = groups.c.went == 1

    def total(value: Any, *where: Any, none: Any = 0) -> Any:
        return cast(func.sum(case((and_(*where), value), else_=none)), Integer)

    per_part = [
        column
        for at in range(1, month + 1)
        for column in (
            total(groups.c.records, groups.c.part == at),
            total(groups.c.records, groups.c.part == at, attended),
            total(groups.c.moods, groups.c.part == at, attended),
            total(groups.c.mood_total, groups.c.part == at, attended, none=None),
        )
    ]
    enrolments = (
        select(
            groups.c.enrolment_id,
            func.min(case((attended, groups.c.first_on))).label("first_on"),
            func.min(case((and_(attended, groups.c.part == month), groups.c.first_on))).label(
                "month_first_on"
            ),
            *per_part,
            total(groups.c.records, attended),
            func.min(case((attended, groups.c.met_id))),
            func.max(case((attended, groups.c.met_id))),
        )
        .group_by(groups.c.enrolment_id)
        .subquery()
    )
    rows = _rows(
        select(
            enrolments,
            Referral.patient_id,
            Referral.received_on,
            Patient.date_of_birth,
            # Their stored values, as text: converting each row's to its enum costs more
            # than the rest of the row; section D converts each person's once.
            type_coerce(Patient.sex, String),
            type_coerce(Patient.ethnicity, String),
            Enrolment.course_id,
        )
        .join(Enrolment, Enrolment.id == enrolments.c.enrolment_id)
        .join(Referral, Referral.id == Enrolment.referral_id)
        .join(Patient, Patient.id == Referral.patient_id)
    )
    # Each part is tallied once; a span's tally is the union of the parts it covers.
    parts = [_Tally() for _ in range(month + 1)]
    firsts: list[tuple[date, date]] = []  # each enrolment's first attended, referral received
    supported: dict[int, _Person] = {}
    attended_records: dict[int, _Attended] = {}
    width = 3 + 4 * month
    for row in rows:
        first_on, month_first_on = row[1], row[2]
        went, met_low, met_high, patient, received, born, sex, ethnicity, course_id = row[width:]
        if went:
            attended_records[row[0]] = (
                course_id,
                went,
                met_low != course_id or met_high != course_id,
            )
        for at in range(1, month + 1):
            records, attendances, moods, mood_total = row[4 * at - 1 : 4 * at + 3]
            if not records:
                continue
            tally = parts[at]
            tally.records += records
            tally.recorded_people.add(patient)
            if attendances:
                tally.attendances += attendances
                tally.people.add(patient)
                if moods:
                    tally.mood_records += moods
                    tally.mood_total = (tally.mood_total or 0) + mood_total
                    tally.mood_people.add(patient)
        if first_on is not None:
            firsts.append((first_on, received))
        if month_first_on is not None:
            known = supported.get(patient)
            if known is None or month_first_on < known.first_on:
                supported[patient] = _Person(month_first_on, born, sex, ethnicity)
    # The spans' tallies from their parts: none before the widest span (part 0).
    tallies = [
        _merged([parts[i + 1] for i, start in enumerate(starts) if start >= window.start])
        for window in spans
    ]
    for first_on, received in firsts:
        wait = (first_on - received).days
        for window, tally in zip(spans, tallies, strict=True):
            if first_on >= window.start:
                tally.waits.append(wait)
    return tallies, supported, attended_records


@dataclass(frozen=True)
class _CourseRow:
    course_id: int
    cost_pence: int
    ends_on: date
    delivered: int  # every delivered session of the course
    delivered_in: tuple[int, ...]  # delivered sessions in each span


def _courses_meeting(scope: Scope, spans: list[Window]) -> list[_CourseRow]:
    """In-scope courses that meet (a session not cancelled) in the widest span: their cost,
    end (last session not cancelled), delivered sessions, and delivered sessions in each span
    (one query). B4, E1, and the courses that ended in each span (B7, E4) come from these."""
    widest = min(w.start for w in spans)
    end = spans[0].end
    meeting = select(CourseSession.course_id).where(
        CourseSession.date >= widest,
        CourseSession.date <= end,
        CourseSession.status != SessionStatus.CANCELLED,
    )
    delivered = CourseSession.status == SessionStatus.DELIVERED
    rows = _rows(
        select(
            CourseSession.course_id,
            Course.cost_per_session_pence,
            func.max(CourseSession.date),
            func.sum(case((delivered, 1), else_=0)),
            *(
                func.sum(
                    case(
                        (
                            and_(
                                delivered,
                                CourseSession.date >= window.start,
                                CourseSession.date <= end,
                            ),
                            1,
                        ),
                        else_=0,
                    )
                )
                for window in spans
            ),
        )
        .join(Course, Course.id == CourseSession.course_id)
        .where(
            CourseSession.status != SessionStatus.CANCELLED,
            _courses_in(scope),
            CourseSession.course_id.in_(meeting),
        )
        .group_by(CourseSession.course_id, Course.cost_per_session_pence)
    )
    return [
        _CourseRow(
            row[0], int(row[1] or 0), row[2], int(row[3] or 0), tuple(int(n) for n in row[4:])
        )
        for row in rows
    ]


def _completed(
    ended: list[_CourseRow], spans: list[Window], attended: dict[int, _Attended]
) -> list[set[int]]:
    """B7's enrolments in each span, from the attendance pass (no query of its own).

    The pass reads every attended record at a delivered session of the courses that ended in
    any span: each of them met in the widest span and ended by its end, so all their delivered
    sessions are in the pass. An enrolment whose records were all at its own course's sessions
    completed in a span when that course ended in it and it attended at least 75% (rounded
    up) of its delivered sessions. Where any enrolment on an ended course attended another
    course's session, the records count by both courses' ends, which `_completions` reads."""
    completed: list[set[int]] = [set() for _ in spans]
    # Each ended course's attendances needed, and the spans it ended in.
    rule = {
        course.course_id: (
            (course.delivered * 3 + 3) // 4,
            [done for done, w in zip(completed, spans, strict=True) if course.ends_on >= w.start],
        )
        for course in ended
        if course.delivered
    }
    ended_ids = {course.course_id for course in ended}
    for enrolment_id, (course_id, records, elsewhere) in attended.items():
        if course_id not in ended_ids:
            continue
        if elsewhere:
            return _completions(ended, spans)
        needed = rule.get(course_id)
        if needed is not None and records >= needed[0]:
            for done in needed[1]:
                done.add(enrolment_id)
    return completed


def _completions(ended: list[_CourseRow], spans: list[Window]) -> list[set[int]]:
    """B7's enrolments in each span: on a course that ended in the span, attended at least 75%
    (rounded up) of its delivered sessions (one query).

    Attendance counts at the sessions of the span's ended courses, as the specification words
    it; it is read once for every course that ended in any span, and counted into each span
    in SQL. Each course's end (its last session not cancelled) and delivered sessions are
    those of `_courses_meeting`, worked out again beside the count. Only the enrolments that
    completed in the widest span come back: every course here ended in it, so no other
    completed in any span."""
    ids = [c.course_id for c in ended]
    delivered = CourseSession.status == SessionStatus.DELIVERED
    ends = (
        select(
            CourseSession.course_id,
            func.max(
                case((CourseSession.status != SessionStatus.CANCELLED, CourseSession.date))
            ).label("ends_on"),
            func.sum(case((delivered, 1), else_=0)).label("delivered"),
        )
        .where(_among(CourseSession.course_id, ids))
        .group_by(CourseSession.course_id)
        .cte("ends")
    )
    # Attended records of each enrolment by the course whose session it was.
    attended = (
        select(
            Enrolment.id.label("enrolment_id"),
            Enrolment.course_id,
            CourseSession.course_id.label("met_id"),
            func.count().label("records"),
        )
        .select_from(Attendance)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .join(Enrolment, Enrolment.id == Attendance.enrolment_id)
        .where(
            _attended_at_delivered(),
            _among(CourseSession.course_id, ids),
            _among(Enrolment.course_id, ids),
        )
        .group_by(Enrolment.id, Enrolment.course_id, CourseSession.course_id)
        .subquery("attended")
    )
    own, met = ends.alias("own"), ends.alias("met")  # the enrolment's course, the session's
    # Records count in a span when both courses ended in it: from the earlier end on.
    counts_from = case((own.c.ends_on < met.c.ends_on, own.c.ends_on), else_=met.c.ends_on)
    needed = (own.c.delivered * 3 + 3) // 4
    in_span = [func.sum(case((counts_from >= w.start, attended.c.records), else_=0)) for w in spans]
    rows = _rows(
        select(attended.c.enrolment_id, needed, *in_span)
        .join(own, own.c.course_id == attended.c.course_id)
        .join(met, met.c.course_id == attended.c.met_id)
        .where(own.c.delivered > 0)
        .group_by(attended.c.enrolment_id, own.c.delivered)
        .having(func.sum(attended.c.records) >= needed)
    )
    completed: list[set[int]] = [set() for _ in spans]
    for enrolment_id, at_least, *attended in rows:
        for done, count in zip(completed, attended, strict=True):
            if count >= at_least:
                done.add(enrolment_id)
    return completed


def _score_centi() -> Any:
    """An assessment's SWEMWBS metric score in hundredths of a point.

    A SWEMWBS questionnaire gives its own metric score. A WEMWBS questionnaire gives the
    SWEMWBS score of its seven SWEMWBS items, summed and converted with the table; one whose
    answers are incomplete gives none (NULL).
    """
    items = WellbeingAssessment.items
    raw = reduce(
        lambda total, item: total + item,
        [items[number - 1].as_integer() for number in SWEMWBS_ITEMS_IN_WEMWBS],
    )
    from_wemwbs = case(
        {total: int(metric * 100) for total, metric in SWEMWBS_METRIC.items()}, value=raw
    )
    return case(
        (
            WellbeingAssessment.instrument == Instrument.SWEMWBS,
            cast(func.round(WellbeingAssessment.metric_score * 100), Integer),
        ),
        else_=from_wemwbs,
    )


def _swemwbs_first() -> Any:
    """0 for a SWEMWBS questionnaire, 1 for a WEMWBS one: SWEMWBS counts first."""
    return case((WellbeingAssessment.instrument == Instrument.SWEMWBS, 0), else_=1)


def _counting_rank(swemwbs_first: Any) -> Any:
    """Each assessment's rank among its enrolment's at the same timepoint, 1 for the one that
    counts: the most recent SWEMWBS, or where there is none, the most recent WEMWBS."""
    return func.row_number().over(
        partition_by=(WellbeingAssessment.enrolment_id, WellbeingAssessment.timepoint),
        order_by=(
            swemwbs_first,
            WellbeingAssessment.recorded_on.desc(),
            WellbeingAssessment.id.desc(),
        ),
    )


def _chosen_scores(enrolments: Any, *which: Any) -> dict[int, dict[str, int]]:
    """One score per enrolment and timepoint: its most recent SWEMWBS, or where it has no
    SWEMWBS at that timepoint, its most recent WEMWBS (as SWEMWBS), in hundredths (one query).

    `which` selects the assessments considered (the timepoints, and any dates)."""
    centi = _score_centi()
    swemwbs_first = _swemwbs_first()
    ranked = (
        select(
            WellbeingAssessment.enrolment_id,
            WellbeingAssessment.timepoint,
            centi.label("centi"),
            _counting_rank(swemwbs_first).label("rank"),
        )
        .where(WellbeingAssessment.enrolment_id.in_(enrolments), centi.is_not(None), *which)
        .subquery()
    )
    chosen: dict[int, dict[str, int]] = {}
    # The timepoint as its stored value: converting each row's to the enum and back would
    # cost more than the rest of the row.
    for enrolment_id, timepoint, score in _rows(
        select(
            ranked.c.enrolment_id, type_coerce(ranked.c.timepoint, String), ranked.c.centi
        ).where(ranked.c.rank == 1)
    ):
        chosen.setdefault(enrolment_id, {})[timepoint] = int(score)
    return chosen


def _span_figures(scope: Scope, spans: list[Window]) -> tuple[list[Figure], list[Figure]]:
    """Sections B, C and E over every span (five queries, whatever the spans; one more
    where someone on a course that ended attended another course's session), and section D."""
    tallies, supported, attended = _attendance_tallies(scope, spans)
    courses = _courses_meeting(scope, spans)
    widest, end = min(w.start for w in spans), spans[0].end
    ended = [c for c in courses if widest <= c.ends_on <= end]
    completions = _completed(ended, spans, attended)
    paired = _paired_scores(ended)
    follow_ups = _follow_ups(scope, spans)
    figures: list[Figure] = []
    for n, (window, tally, completed) in enumerate(zip(spans, tallies, completions, strict=True)):
        span = window.span.value
        waits = tally.waits
        median = Decimal(str(statistics.median(waits))).quantize(ONE) if waits else None
        sessions = sum(c.delivered_in[n] for c in courses)
        cost_pence = sum(c.cost_pence * c.delivered_in[n] for c in courses)
        ended_cost_pence = sum(
            c.cost_pence * c.delivered_in[n] for c in ended if c.ends_on >= window.start
        )
        people, attendances = len(tally.people), tally.attendances
        figures += [
            Figure("B1", Kind.COUNT, people, span=span),
            Figure("B2", Kind.COUNT, len(waits), span=span),
            Figure("B3", Kind.MEDIAN, median, span=span, people=len(waits)),
            Figure("B4", Kind.SESSIONS, sessions, span=span),
            Figure("B5", Kind.COUNT, attendances, span=span),
            Figure(
                "B6",
                Kind.PERCENT,
                percentage(attendances, tally.records),
                span=span,
                people=len(tally.recorded_people),
                numerator=attendances,
                denominator=tally.records,
            ),
            Figure("B7", Kind.COUNT, len(completed), span=span),
        ]
        figures += _outcomes(span, [paired[e] for e in completed if e in paired], len(completed))
        figures.append(
            Figure(
                "C7",
                Kind.MEAN,
                _quantised(tally.mood_total, tally.mood_records),
                span=span,
                people=len(tally.mood_people),
            )
        )
        figures += follow_ups[n]
        figures += [
            Figure("E1", Kind.MONEY, _pounds(cost_pence), span=span),
            Figure("E2", Kind.COST, _per(cost_pence, people), span=span, people=people),
            Figure("E3", Kind.COST, _per(cost_pence, attendances), span=span, people=attendances),
            Figure(
                "E4",
                Kind.COST,
                _per(ended_cost_pence, len(completed)),
                span=span,
                people=len(completed),
            ),
        ]
    return figures, _section_d(supported)


def _pounds(pence: int) -> Decimal:
    return (Decimal(pence) / 100).quantize(TWO)


def _per(pence: int, count: int) -> Decimal | None:
    if not count:
        return None
    return (Decimal(pence) / 100 / count).quantize(TWO, rounding=ROUND_HALF_UP)


def _paired_scores(ended: list[_CourseRow]) -> dict[int, tuple[int, int]]:
    """The chosen baseline and end scores (hundredths) of every enrolment with both, on the
    courses that ended in any span: every span's completions are among them (one query)."""
    chosen = _chosen_scores(
        select(Enrolment.id).where(_among(Enrolment.course_id, [c.course_id for c in ended])),
        WellbeingAssessment.timepoint.in_((Timepoint.BASELINE, Timepoint.END)),
    )
    baseline, end = Timepoint.BASELINE.value, Timepoint.END.value
    return {
        enrolment_id: (scores[baseline], scores[end])
        for enrolment_id, scores in chosen.items()
        if len(scores) == 2
    }


def _outcomes(span: str, pairs: list[tuple[int, int]], completed: int) -> list[Figure]:
    """C0 to C6 over a span's completions, from their paired scores."""
    paired = len(pairs)
    threshold = int(MEANINGFUL_CHANGE * 100)
    mean_baseline = _quantised(_centi_total(sum(p[0] for p in pairs)) if pairs else None, paired)
    mean_end = _quantised(_centi_total(sum(p[1] for p in pairs)) if pairs else None, paired)
    improved = sum(1 for first, last in pairs if last - first >= threshold)
    worsened = sum(1 for first, last in pairs if last - first <= -threshold)
    # C4 is C3 - C2 of the rounded means, so the three figures agree on the page.
    mean_change = (
        (mean_end - mean_baseline).quantize(TWO)
        if mean_end is not None and mean_baseline is not None
        else None
    )
    return [
        Figure(
            "C0",
            Kind.PERCENT,
            percentage(paired, completed, places=0),
            span=span,
            numerator=paired,
            denominator=completed,
        ),
        Figure("C1", Kind.COUNT, paired, span=span),
        Figure("C2", Kind.MEAN, mean_baseline, span=span, people=paired),
        Figure("C3", Kind.MEAN, mean_end, span=span, people=paired),
        Figure("C4", Kind.MEAN, mean_change, span=span, people=paired),
        Figure(
            "C5",
            Kind.PERCENT,
            percentage(improved, paired),
            span=span,
            numerator=improved,
            denominator=paired,
        ),
        Figure(
            "C6",
            Kind.PERCENT,
            percentage(worsened, paired),
            span=span,
            numerator=worsened,
            denominator=paired,
        ),
    ]


def _centi_total(total: Any) -> Decimal | None:
    return None if total is None else Decimal(int(total)) / 100


def _follow_ups(scope: Scope, spans: list[Window]) -> list[list[Figure]]:
    """C8 and C9 for every span: in-scope enrolments with a follow-up recorded in the span and
    a baseline (one query).

    The score at each timepoint is chosen as `_chosen_scores` chooses it. A baseline's choice
    is the same in every span; a follow-up's is among those recorded in the span, so every
    follow-up recorded in the widest span is read, with what ranks it, and ranked here."""
    widest, end = min(w.start for w in spans), spans[0].end
    in_widest = and_(
        WellbeingAssessment.timepoint == Timepoint.FOLLOW_UP,
        WellbeingAssessment.recorded_on >= widest,
        WellbeingAssessment.recorded_on <= end,
    )
    followed_up = (
        select(WellbeingAssessment.enrolment_id)
        .join(Enrolment, Enrolment.id == WellbeingAssessment.enrolment_id)
        .join(Course, Course.id == Enrolment.course_id)
        .where(_courses_in(scope), in_widest)
    )
    centi = _score_centi()
    is_baseline = WellbeingAssessment.timepoint == Timepoint.BASELINE
    swemwbs_first = _swemwbs_first()
    ranked = (
        select(
            WellbeingAssessment.enrolment_id,
            is_baseline.label("is_baseline"),
            centi.label("centi"),
            swemwbs_first.label("swemwbs_first"),
            WellbeingAssessment.recorded_on,
            WellbeingAssessment.id,
            _counting_rank(swemwbs_first).label("rank"),
        )
        .where(
            WellbeingAssessment.enrolment_id.in_(followed_up),
            centi.is_not(None),
            or_(is_baseline, in_widest),
        )
        .subquery()
    )
    baselines: dict[int, int] = {}
    follow_ups: list[tuple[int, tuple[int, int, int], int, date]] = []
    for enrolment_id, baseline, score, swemwbs_rank, recorded_on, assessment_id in _rows(
        select(
            ranked.c.enrolment_id,
            ranked.c.is_baseline,
            ranked.c.centi,
            ranked.c.swemwbs_first,
            ranked.c.recorded_on,
            ranked.c.id,
        ).where(or_(ranked.c.rank == 1, ~ranked.c.is_baseline))
    ):
        if baseline:
            baselines[enrolment_id] = int(score)
        else:
            # The first in _chosen_scores' order ranks lowest.
            order = (swemwbs_rank, -recorded_on.toordinal(), -assessment_id)
            follow_ups.append((enrolment_id, order, int(score), recorded_on))
    figures = []
    for window in spans:
        chosen: dict[int, tuple[tuple[int, int, int], int]] = {}
        for enrolment_id, order, score, recorded_on in follow_ups:
            if recorded_on >= window.start and enrolment_id in baselines:
                best = chosen.get(enrolment_id)
                if best is None or order < best[0]:
                    chosen[enrolment_id] = (order, score)
        changes = [score - baselines[e] for e, (_, score) in chosen.items()]
        pairs = len(changes)
        total = _centi_total(sum(changes)) if changes else None
        span = window.span.value
        figures.append(
            [
                Figure("C8", Kind.COUNT, pairs, span=span),
                Figure("C9", Kind.MEAN, _quantised(total, pairs), span=span, people=pairs),
            ]
        )
    return figures


# Section D: equalities ------------------------------------------------------------------


@functools.cache
def _age_band(age: int) -> str:
    for band in AGE_BANDS[:-1]:
        low, high = (int(x) for x in band.split("-"))
        if low <= age <= high:
            return band
    return "75+"


def _age_on(born: date, on: date) -> int:
    """Whole years from `born` to `on` (a birthday on 29 February falls on 1 March)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


@functools.cache
def _stored(vocabulary: type[Sex] | type[Ethnicity], value: str) -> str:
    """A stored value of a vocabulary, checked against it once."""
    return vocabulary(value).value


def _section_d(supported: dict[int, _Person]) -> list[Figure]:
    """Each person supported in the month, counted once, as they were at their first attended
    in-scope session in the month (from the attendance pass: no query of its own)."""
    rows = [
        (None if p.born is None else _age_on(p.born, p.first_on), p.sex, p.ethnicity, 1)
        for p in supported.values()
    ]
    bands: dict[str, int] = dict.fromkeys(AGE_BANDS, 0)
    sexes: dict[str, int] = {s.value: 0 for s in Sex}
    groups: dict[str, int] = {e.value: 0 for e in Ethnicity}
    unknown_age = 0
    for age, sex, ethnicity, count in rows:
        if age is None:
            unknown_age += count
        else:
            bands[_age_band(int(age))] += count
        sexes[_stored(Sex, sex)] += count
        groups[_stored(Ethnicity, ethnicity)] += count
    figures = [Figure("D1", Kind.COUNT, n, f"age_band={band}") for band, n in bands.items()]
    if unknown_age:
        figures.append(Figure("D1", Kind.COUNT, unknown_age, "age_band=unknown"))
    figures += [Figure("D2", Kind.COUNT, n, f"sex={s}") for s, n in sexes.items()]
    figures += [Figure("D3", Kind.COUNT, n, f"ethnicity={e}") for e, n in groups.items()]
    return figures


def _age_expression(born: Any, on: Any) -> Any:
    """Whole years between two dates, on SQLite and PostgreSQL alike."""
    if db.engine.dialect.name == "sqlite":
        years = func.cast(func.strftime("%Y", on), db.Integer) - func.cast(
            func.strftime("%Y", born), db.Integer
        )
        birthday_to_come = func.strftime("%m-%d", on) < func.strftime("%m-%d", born)
        return years - case((birthday_to_come, 1), else_=0)
    return func.extract("year", func.age(on, born))


# The whole return ------------------------------------------------------------------------


def scheme_figures(period: Period) -> list[Figure]:
    """Section A for the month: scheme-wide, so the same for every scope of the month."""
    _without_jit()
    return _section_a(period)


def compute(
    scope: Scope,
    period: Period,
    contract_start: date | None = None,
    section_a: list[Figure] | None = None,
) -> Result:
    """Every figure of the specification for one scope and month, unsuppressed: section A
    for the month (`section_a` if given, from `scheme_figures` for the same month), B, C
    and E for each span, D for the month."""
    spans = windows(period, contract_start)
    _without_jit()
    figures = list(section_a) if section_a is not None else _section_a(period)
    span_figures, section_d = _span_figures(scope, spans)
    figures += span_figures + section_d
    return Result(scope.key, period.key, SPEC_VERSION, figures)


def _without_jit() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        # PostgreSQL compiles a statement it estimates as costly (JIT): tens of milliseconds
        # for each of these, more than the statement itself takes once planned by index.
        # The engine reads a few thousand sessions' records out of millions: along the
        # indexes, each probe is a page already in memory (or on solid-state storage), so a
        # random page costs about what a sequential one does, not PostgreSQL's default four
        # times as much, which makes it read whole tables instead. Both settings last until
        # the transaction ends (SET LOCAL), set in one statement.
        db.session.execute(
            text(
                "SELECT set_config('jit', 'off', true), set_config('random_page_cost', '1.1', true)"
            )
        )


# Publishing: suppression and ratings -------------------------------------------------------


@dataclass(frozen=True)
class PublishedFigure:
    code: str
    name: str
    span: str
    breakdown: str
    value: str  # what commissioners see: a number, "*" or ""
    raw_value: str  # the true figure, for admins
    suppressed: bool
    target_rating: str | None
    kind: str
    target_minimum: float | None = None
    target_expected: float | None = None
    target_stretch: float | None = None
    secondary: bool = False  # withheld only so that another cell cannot be worked out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: int | Decimal | str | None) -> str:
    if value is None:
        return ""
    return str(value)


def _primary(figure: Figure) -> int | Decimal | str | None:
    """What the small-number rule shows for one figure on its own."""
    if figure.kind is Kind.COUNT:
        return round_count(int(figure.value or 0))
    if figure.kind in (Kind.SESSIONS, Kind.MONEY):
        return figure.value
    if figure.kind is Kind.PERCENT:
        if figure.value is None:
            return None
        return protect_percentage(figure.numerator or 0, figure.denominator or 0, figure.people)
    return protect_statistic(
        figure.value if isinstance(figure.value, Decimal) else None, figure.people or 0
    )


Key = tuple[str, str, str]  # (code, breakdown, span)


def _families(figures: Iterable[Figure], shown: dict[Hashable, Any]) -> list[Family]:
    """Totals with their breakdowns, for secondary suppression (the month's cells)."""
    cells: dict[str, list[Key]] = {}
    for f in figures:
        if f.breakdown and f.span == MONTH:
            cells.setdefault(f.code + ":" + f.breakdown.partition("=")[0], []).append(
                (f.code, f.breakdown, f.span)
            )

    def groups(*names: str) -> tuple[tuple[Hashable, ...], ...]:
        return tuple(tuple(cells[n]) for n in names if n in cells)

    # E1 / E2 gives B1 exactly, so where both are shown a reader knows the true B1.
    cost_per_person = shown.get(("E2", "", MONTH))
    b1_exact = cost_per_person not in (None, SUPPRESSED) and shown.get(("E1", "", MONTH)) not in (
        None,
        Decimal(0),
    )
    families = [
        Family(("A1", "", MONTH), groups("A1:referrer_type", "A1:pathway")),
        Family(("A2", "", MONTH), groups("A2:close_reason")),
        Family(
            ("B1", "", MONTH), groups("D1:age_band", "D2:sex", "D3:ethnicity"), total_exact=b1_exact
        ),
    ]
    return [f for f in families if f.total in shown and f.breakdowns]


def publish(result: Result, targets: dict[str, Any] | None) -> list[PublishedFigure]:
    """Apply the small-number rule (with secondary suppression) for commissioners, and rate
    every targeted figure on its TRUE value against the contract's targets for its span."""
    shown: dict[Hashable, Any] = {
        (f.code, f.breakdown, f.span): _primary(f) for f in result.figures
    }
    true_counts: dict[Hashable, int] = {
        (f.code, f.breakdown, f.span): int(f.value or 0)
        for f in result.figures
        if f.kind is Kind.COUNT
    }
    counts: dict[Hashable, Shown] = {
        key: value for key, value in shown.items() if key in true_counts
    }
    protected, secondary = protect_breakdowns(_families(result.figures, shown), true_counts, counts)
    shown.update(protected)
    published = []
    for figure in result.figures:
        key = (figure.code, figure.breakdown, figure.span)
        value = shown[key]
        target = None if figure.breakdown else target_for(targets, figure.code, figure.span)
        rating = (
            rate(figure.value, target, DIRECTIONS[figure.code])
            if target and figure.code in DIRECTIONS
            else None
        )
        published.append(
            PublishedFigure(
                code=figure.code,
                name=figure.name,
                span=figure.span,
                breakdown=figure.breakdown,
                value=_text(value),
                raw_value=_text(figure.value),
                suppressed=_text(value) == SUPPRESSED,
                target_rating=rating,
                kind=figure.kind.value,
                target_minimum=(target or {}).get("minimum"),
                target_expected=(target or {}).get("expected"),
                target_stretch=(target or {}).get("stretch"),
                secondary=key in secondary,
            )
        )
    return published


def suppression_log(figures: list[PublishedFigure]) -> list[dict[str, Any]]:
    """Every cell the small-number rule changed: withheld as "*" (and whether only to protect
    another cell), or rounded."""
    return [
        {
            "code": f.code,
            "span": f.span,
            "breakdown": f.breakdown,
            "shown": f.value,
            "protection": "suppressed" if f.suppressed else "rounded",
            "secondary": f.secondary,
        }
        for f in figures
        if f.value != f.raw_value
    ]
