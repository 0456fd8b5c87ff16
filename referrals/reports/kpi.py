"""The KPI engine: sections A–D of the KPI specification for one scope and period.

Every figure is an SQL aggregate; Python only arranges results (and takes the median of B3's
waits, one value per new starter). The engine returns plain data; suppression for
commissioners and target ratings are applied afterwards by `publish`.
Decisions the specification leaves open are written in docs/kpi.md.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Select, and_, case, distinct, exists, func, literal, select

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
from referrals.outcomes.scoring import MEANINGFUL_CHANGE, Instrument, Timepoint
from referrals.reports.periods import Period, Scope
from referrals.reports.rules import (
    SUPPRESSED,
    Kind,
    percentage,
    protect_percentage,
    protect_statistic,
    rate,
    round_count,
)
from referrals.vocab import Ethnicity, Pathway, ReferrerType, Sex

SPEC_VERSION = "1"

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
    "C1": "Paired outcomes",
    "C2": "Mean baseline score",
    "C3": "Mean end score",
    "C4": "Mean change",
    "C5": "Improved (%)",
    "C6": "Worsened (%)",
    "C7": "Session mood uplift",
    "D1": "People supported by age band",
    "D2": "People supported by sex",
    "D3": "People supported by ethnic group",
}
HEADLINE_CODES = ("A1", "B1", "B2", "B4", "B6", "B7", "C4", "C5")
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+")
CLOSE_REASONS = ("declined", "unable_to_contact", "not_suitable", "did_not_start", "other")
TWO = Decimal("0.01")
ONE = Decimal("0.1")


@dataclass(frozen=True)
class Figure:
    """One KPI cell. `breakdown` is "" for the headline, else "dimension=value"."""

    code: str
    kind: Kind
    value: int | Decimal | None
    breakdown: str = ""
    people: int | None = None  # how many people a mean, median or percentage is over
    numerator: int | None = None  # percentages keep their counts, to recompute when rounded
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

    def get(self, code: str, breakdown: str = "") -> Figure:
        return next(f for f in self.figures if f.code == code and f.breakdown == breakdown)


# Scope helpers --------------------------------------------------------------------------


def _courses_in(scope: Scope) -> Any:
    """A WHERE clause on Course for the scope."""
    return literal(True) if scope.is_all else Course.contract_id == scope.contract_id


def _sessions_in(scope: Scope, period: Period) -> Any:
    return and_(
        CourseSession.date >= period.start, CourseSession.date <= period.end, _courses_in(scope)
    )


def _attendance_in(scope: Scope, period: Period) -> Select[Any]:
    """Attendance rows at sessions of in-scope courses dated in the period."""
    return (
        select(Attendance)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .join(Course, Course.id == CourseSession.course_id)
        .where(_sessions_in(scope, period))
    )


def _attended_at_delivered() -> Any:
    return and_(
        Attendance.status == AttendanceStatus.ATTENDED,
        CourseSession.status == SessionStatus.DELIVERED,
    )


def _count(query: Select[Any]) -> int:
    return int(db.session.scalar(query) or 0)


# Section A: referrals (always scheme-wide) ------------------------------------------------


def _section_a(period: Period) -> list[Figure]:
    in_period = and_(Referral.received_on >= period.start, Referral.received_on <= period.end)
    figures = [Figure("A1", Kind.COUNT, _count(select(func.count()).where(in_period)))]
    by_type = dict(
        db.session.execute(
            select(Referral.referrer_type, func.count())
            .where(in_period)
            .group_by(Referral.referrer_type)
        ).all()
    )
    figures += [
        Figure("A1", Kind.COUNT, by_type.get(t, 0), f"referrer_type={t.value}")
        for t in ReferrerType
    ]
    by_pathway = dict(
        db.session.execute(
            select(Referral.pathway, func.count()).where(in_period).group_by(Referral.pathway)
        ).all()
    )
    figures += [
        Figure("A1", Kind.COUNT, by_pathway.get(p, 0), f"pathway={p.value}") for p in Pathway
    ]

    # Both A2 and A3 judge each referral as it stood at the end of the month, from its
    # lifecycle history: the last status change on or before that day.
    def latest_step(column: Any) -> Any:
        return (
            select(column)
            .where(
                ReferralTransition.referral_id == Referral.id,
                ReferralTransition.effective_on <= period.end,
            )
            .order_by(ReferralTransition.effective_on.desc(), ReferralTransition.id.desc())
            .limit(1)
            .correlate(Referral)
            .scalar_subquery()
        )

    status_at_end = latest_step(ReferralTransition.to_status)
    changed_on = latest_step(ReferralTransition.effective_on)
    attended_by_end = exists().where(
        Enrolment.referral_id == Referral.id,
        Attendance.enrolment_id == Enrolment.id,
        Attendance.session_id == CourseSession.id,
        _attended_at_delivered(),
        CourseSession.date <= period.end,
    )

    # A2: closed during the month (and still closed at its end), never having attended.
    # The last change on or before the month's end falls in the month exactly when some
    # change does: looking only at those referrals keeps this to the month's activity.
    changed_in_period = select(ReferralTransition.referral_id).where(
        ReferralTransition.effective_on >= period.start,
        ReferralTransition.effective_on <= period.end,
    )
    by_reason: dict[str, int] = {}
    for status, count in db.session.execute(
        select(status_at_end, func.count())
        .select_from(Referral)
        .where(
            Referral.id.in_(changed_in_period),
            Referral.received_on <= period.end,
            status_at_end.in_(CLOSING_STATUSES),
            changed_on >= period.start,
            ~attended_by_end,
        )
        .group_by(status_at_end)
    ).all():
        closed = Status(status)
        key = "other" if closed is Status.WITHDRAWN else closed.value
        by_reason[key] = by_reason.get(key, 0) + count
    figures.append(Figure("A2", Kind.COUNT, sum(by_reason.values())))
    figures += [
        Figure("A2", Kind.COUNT, by_reason.get(r, 0), f"close_reason={r}") for r in CLOSE_REASONS
    ]

    figures.append(
        Figure(
            "A3",
            Kind.COUNT,
            _count(
                select(func.count())
                .select_from(Referral)
                .where(
                    Referral.received_on <= period.end,
                    status_at_end.in_(OPEN_STATUSES),
                    ~attended_by_end,
                )
            ),
        )
    )
    return figures


# Section B: participation ---------------------------------------------------------------


def _first_attendance(scope: Scope, period: Period) -> Any:
    """The first attended delivered session date of each in-scope enrolment that attended in
    the period (only those can have started in it)."""
    attended_in_period = (
        select(Attendance.enrolment_id)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .join(Course, Course.id == CourseSession.course_id)
        .where(_sessions_in(scope, period), _attended_at_delivered())
    )
    return (
        select(Attendance.enrolment_id, func.min(CourseSession.date).label("first_on"))
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .join(Course, Course.id == CourseSession.course_id)
        .where(
            _attended_at_delivered(),
            _courses_in(scope),
            Attendance.enrolment_id.in_(attended_in_period),
        )
        .group_by(Attendance.enrolment_id)
        .subquery()
    )


def _completions(scope: Scope, period: Period) -> Any:
    """B7's enrolments: course end in the period, attended at least 75% (rounded up)."""
    # A course can only end in the period if it meets in it; counting attendance for just
    # those courses' enrolments keeps the work to the month's courses.
    meeting = select(CourseSession.course_id).where(
        CourseSession.date >= period.start,
        CourseSession.date <= period.end,
        CourseSession.status != SessionStatus.CANCELLED,
    )
    ends = (
        select(
            CourseSession.course_id,
            func.max(CourseSession.date).label("ends_on"),
            func.sum(case((CourseSession.status == SessionStatus.DELIVERED, 1), else_=0)).label(
                "delivered"
            ),
        )
        .join(Course, Course.id == CourseSession.course_id)
        .where(
            CourseSession.status != SessionStatus.CANCELLED,
            _courses_in(scope),
            CourseSession.course_id.in_(meeting),
        )
        .group_by(CourseSession.course_id)
        .subquery()
    )
    attended = (
        select(Attendance.enrolment_id, func.count().label("attended"))
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .where(
            _attended_at_delivered(),
            Attendance.enrolment_id.in_(
                select(Enrolment.id).where(Enrolment.course_id.in_(meeting))
            ),
        )
        .group_by(Attendance.enrolment_id)
        .subquery()
    )
    # ceil(0.75 * delivered) in integers: (3 * delivered + 3) // 4.
    needed = (ends.c.delivered * 3 + 3) // 4
    return (
        select(Enrolment.id.label("enrolment_id"))
        .join(ends, ends.c.course_id == Enrolment.course_id)
        .join(attended, attended.c.enrolment_id == Enrolment.id)
        .where(
            ends.c.ends_on >= period.start,
            ends.c.ends_on <= period.end,
            ends.c.delivered > 0,
            attended.c.attended >= needed,
        )
        .subquery()
    )


def _section_b(scope: Scope, period: Period) -> tuple[list[Figure], list[int]]:
    attendance = _attendance_in(scope, period).subquery()
    people = _count(
        select(func.count(distinct(Referral.patient_id)))
        .select_from(Attendance)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .join(Course, Course.id == CourseSession.course_id)
        .join(Enrolment, Enrolment.id == Attendance.enrolment_id)
        .join(Referral, Referral.id == Enrolment.referral_id)
        .where(_sessions_in(scope, period), _attended_at_delivered())
    )
    first = _first_attendance(scope, period)
    starters = db.session.execute(
        select(first.c.first_on, Referral.received_on)
        .join(Enrolment, Enrolment.id == first.c.enrolment_id)
        .join(Referral, Referral.id == Enrolment.referral_id)
        .where(first.c.first_on >= period.start, first.c.first_on <= period.end)
    ).all()
    waits = [(first_on - received).days for first_on, received in starters]
    median = Decimal(str(statistics.median(waits))).quantize(ONE) if waits else None
    delivered = _count(
        select(func.count())
        .select_from(CourseSession)
        .join(Course, Course.id == CourseSession.course_id)
        .where(_sessions_in(scope, period), CourseSession.status == SessionStatus.DELIVERED)
    )
    attended_n, all_records, recorded_people = db.session.execute(
        select(
            func.coalesce(
                func.sum(case((attendance.c.status == AttendanceStatus.ATTENDED, 1), else_=0)), 0
            ),
            func.count(),
            func.count(distinct(Referral.patient_id)),
        )
        .select_from(attendance)
        .join(Enrolment, Enrolment.id == attendance.c.enrolment_id)
        .join(Referral, Referral.id == Enrolment.referral_id)
    ).one()
    attended_n, all_records = int(attended_n), int(all_records)
    # The month's completions are few; fetched once, section C scores just these.
    completions = list(db.session.scalars(select(_completions(scope, period).c.enrolment_id)))
    completed_n = len(completions)
    figures = [
        Figure("B1", Kind.COUNT, people),
        Figure("B2", Kind.COUNT, len(starters)),
        Figure("B3", Kind.MEDIAN, median, people=len(starters)),
        Figure("B4", Kind.COUNT, delivered),
        Figure("B5", Kind.COUNT, attended_n),
        Figure(
            "B6",
            Kind.PERCENT,
            percentage(attended_n, all_records),
            people=int(recorded_people),
            numerator=attended_n,
            denominator=all_records,
        ),
        Figure("B7", Kind.COUNT, completed_n),
    ]
    return figures, completions


# Section C: wellbeing -------------------------------------------------------------------


def _latest_score(timepoint: Timepoint, enrolments: Sequence[int]) -> Any:
    """The most recent SWEMWBS metric score at a timepoint of each of `enrolments`."""
    ranked = (
        select(
            WellbeingAssessment.enrolment_id,
            WellbeingAssessment.metric_score,
            func.row_number()
            .over(
                partition_by=WellbeingAssessment.enrolment_id,
                order_by=(WellbeingAssessment.recorded_on.desc(), WellbeingAssessment.id.desc()),
            )
            .label("rank"),
        )
        .where(
            WellbeingAssessment.instrument == Instrument.SWEMWBS,
            WellbeingAssessment.timepoint == timepoint,
            WellbeingAssessment.enrolment_id.in_(enrolments),
        )
        .subquery()
    )
    return select(ranked.c.enrolment_id, ranked.c.metric_score).where(ranked.c.rank == 1).subquery()


def _mean(values: Iterable[Decimal]) -> Decimal | None:
    items = list(values)
    if not items:
        return None
    return (sum(items, Decimal(0)) / len(items)).quantize(TWO, rounding=ROUND_HALF_UP)


def _section_c(scope: Scope, period: Period, completions: Sequence[int]) -> list[Figure]:
    baseline = _latest_score(Timepoint.BASELINE, completions)
    end = _latest_score(Timepoint.END, completions)
    change = end.c.metric_score - baseline.c.metric_score
    row = db.session.execute(
        select(
            func.count(),
            func.sum(baseline.c.metric_score),
            func.sum(end.c.metric_score),
            func.sum(case((change >= MEANINGFUL_CHANGE, 1), else_=0)),
            func.sum(case((change <= -MEANINGFUL_CHANGE, 1), else_=0)),
        )
        .select_from(baseline)
        .join(end, end.c.enrolment_id == baseline.c.enrolment_id)
    ).one()
    paired = int(row[0] or 0)
    mean_baseline = _quantised_mean(row[1], paired)
    mean_end = _quantised_mean(row[2], paired)
    improved, worsened = int(row[3] or 0), int(row[4] or 0)
    mean_change = (
        (mean_end - mean_baseline).quantize(TWO)
        if mean_end is not None and mean_baseline is not None
        else None
    )

    records, uplift_total, mood_people = _mood_uplift(scope, period)
    uplift = _quantised_mean(uplift_total, records)
    return [
        Figure("C1", Kind.COUNT, paired),
        Figure("C2", Kind.MEAN, mean_baseline, people=paired),
        Figure("C3", Kind.MEAN, mean_end, people=paired),
        Figure("C4", Kind.MEAN, mean_change, people=paired),
        Figure(
            "C5",
            Kind.PERCENT,
            percentage(improved, paired),
            people=paired,
            numerator=improved,
            denominator=paired,
        ),
        Figure(
            "C6",
            Kind.PERCENT,
            percentage(worsened, paired),
            people=paired,
            numerator=worsened,
            denominator=paired,
        ),
        Figure("C7", Kind.MEAN, uplift, people=mood_people),
    ]


def _mood_uplift(scope: Scope, period: Period) -> tuple[int, Any, int]:
    row = db.session.execute(
        select(
            func.count(),
            func.sum(Attendance.mood_after - Attendance.mood_before),
            func.count(distinct(Referral.patient_id)),
        )
        .select_from(Attendance)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .join(Course, Course.id == CourseSession.course_id)
        .join(Enrolment, Enrolment.id == Attendance.enrolment_id)
        .join(Referral, Referral.id == Enrolment.referral_id)
        .where(
            _sessions_in(scope, period),
            _attended_at_delivered(),
            Attendance.mood_before.is_not(None),
            Attendance.mood_after.is_not(None),
        )
    ).one()
    return int(row[0] or 0), row[1], int(row[2] or 0)


def _quantised_mean(total: Any, count: int) -> Decimal | None:
    if not count or total is None:
        return None
    return (Decimal(str(total)) / count).quantize(TWO, rounding=ROUND_HALF_UP)


# Section D: equalities ------------------------------------------------------------------


def _age_band(age: int) -> str:
    for band in AGE_BANDS[:-1]:
        low, high = (int(x) for x in band.split("-"))
        if low <= age <= high:
            return band
    return "75+"


def _section_d(scope: Scope, period: Period) -> list[Figure]:
    # Each person is counted once, as they were at their first attended session in the month.
    first_session = (
        select(Referral.patient_id, func.min(CourseSession.date).label("first_on"))
        .select_from(Attendance)
        .join(CourseSession, CourseSession.id == Attendance.session_id)
        .join(Course, Course.id == CourseSession.course_id)
        .join(Enrolment, Enrolment.id == Attendance.enrolment_id)
        .join(Referral, Referral.id == Enrolment.referral_id)
        .where(_sessions_in(scope, period), _attended_at_delivered())
        .group_by(Referral.patient_id)
        .subquery()
    )
    age_years = _age_expression(Patient.date_of_birth, first_session.c.first_on)
    rows = db.session.execute(
        select(age_years, Patient.sex, Patient.ethnicity, func.count())
        .select_from(first_session)
        .join(Patient, Patient.id == first_session.c.patient_id)
        .group_by(age_years, Patient.sex, Patient.ethnicity)
    ).all()
    bands: dict[str, int] = dict.fromkeys(AGE_BANDS, 0)
    sexes: dict[str, int] = {s.value: 0 for s in Sex}
    groups: dict[str, int] = {e.value: 0 for e in Ethnicity}
    unknown_age = 0
    for age, sex, ethnicity, count in rows:
        if age is None:
            unknown_age += count
        else:
            bands[_age_band(int(age))] += count
        sexes[Sex(sex).value] += count
        groups[Ethnicity(ethnicity).value] += count
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


def compute(scope: Scope, period: Period) -> Result:
    """Every figure of the specification for one scope and month, unsuppressed."""
    figures = _section_a(period)
    section_b, completions = _section_b(scope, period)
    figures += section_b
    figures += _section_c(scope, period, completions)
    figures += _section_d(scope, period)
    return Result(scope.key, period.key, SPEC_VERSION, figures)


# Publishing: suppression and ratings -------------------------------------------------------


@dataclass(frozen=True)
class PublishedFigure:
    code: str
    name: str
    breakdown: str
    value: str  # what commissioners see: a number, "*" or ""
    raw_value: str  # for admins
    suppressed: bool
    target_rating: str | None
    kind: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: int | Decimal | str | None) -> str:
    if value is None:
        return ""
    return str(value)


def publish(result: Result, targets: dict[str, dict[str, float]] | None) -> list[PublishedFigure]:
    """Apply the small-number rule and rate headline figures against the contract's targets."""
    published = []
    for figure in result.figures:
        shown: int | Decimal | str | None
        if figure.kind is Kind.COUNT:
            shown = round_count(int(figure.value or 0))
        elif figure.kind is Kind.PERCENT:
            shown = protect_percentage(
                figure.numerator or 0, figure.denominator or 0, figure.people
            )
        else:
            shown = protect_statistic(
                figure.value if isinstance(figure.value, Decimal) else None, figure.people or 0
            )
        # `suppressed` marks a cell withheld as "*"; rounded counts are logged but still shown.
        suppressed = _text(shown) == SUPPRESSED
        rating = rate(shown, (targets or {}).get(figure.code)) if not figure.breakdown else None
        published.append(
            PublishedFigure(
                code=figure.code,
                name=figure.name,
                breakdown=figure.breakdown,
                value=_text(shown),
                raw_value=_text(figure.value),
                suppressed=suppressed,
                target_rating=rating,
                kind=figure.kind.value,
            )
        )
    return published


def suppression_log(figures: list[PublishedFigure]) -> list[dict[str, str]]:
    """Every cell the small-number rule changed: withheld as "*", or rounded."""
    return [
        {
            "code": f.code,
            "breakdown": f.breakdown,
            "shown": f.value,
            "protection": "suppressed" if f.suppressed else "rounded",
        }
        for f in figures
        if f.value != f.raw_value
    ]
