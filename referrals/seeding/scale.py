"""A generated scheme at any scale, for measuring the service: `flask seed scale`.

The shape, for `--referrals N --attendances M` (figures for N = 100,000, M = 1,000,000):

- Organisations: 4 commissioners (2 integrated care boards, 2 council public health teams),
  40 GP practices (ODS codes L85001 on), 4 link worker services and 50 arts providers.
- Accounts (all with the demo password): 1 admin, 2 commissioners per commissioner, 1 GP per
  practice, 10 link workers per service (40; each covers one practice) and 3 artists per
  provider (150). E-mails end `@scale.test`; `SIGN_INS` names one per role.
- Contracts: back-to-back two-year contracts from April for each commissioner, from before the
  first referral to a year after today (the current one began a year or more ago), with
  monthly KPI targets. 60 venues.
- Referrals: N over the last 8 years, rising gently, each with its lifecycle history as the
  service records it: received, contact attempts (one to three), the "what matters" conversation
  (assessed), enrolment (rarely through a waiting list), first attendance (started), then
  completed, or withdrawn, or did not start. About 9 in 100 close before a course (unable to
  contact, declined, not suitable); the share that reaches a course is set so that the
  attendance rows come to M. About 1 person in 12 comes back years later with a new referral.
  Everything after `today` has not happened yet, so the last few weeks' referrals are open:
  received, contacting, assessed, waiting, enrolled on a course that has not started, or
  started on a course that is running (a link worker has a hundred or so open at a time).
- Courses: the assessed people, in the order they were assessed, fill courses of 12 to 30 at
  one of the providers, starting one to three weeks later and meeting weekly for 10 to 12
  sessions (bank holidays skipped, about 1 in 100 sessions cancelled); about 8,000 courses.
  Registers are saved for every session before today, with moods for most who came, SWEMWBS
  at the first session someone comes to and at their last. A course run by `BENCH_ARTIST`
  has 30 people enrolled and a session today whose register has not been taken yet.
- Attendance: exactly M rows when the referrals allow it (at most about 11 per referral),
  otherwise as many as they allow; the report says how many were made.

The arguments are checked before anything is planned or written (`check_arguments`). The plan
is kept as columns of numbers; the referrals and everything that happened to them are then
written in batches, ids assigned here, each batch handed to the database driver in one
statement per table (COPY on PostgreSQL, an executemany of tuples on SQLite, values converted
as SQLAlchemy would) and committed, so the database's journal and the process's memory stay
bounded whatever the size, and `progress` hears how far it has got. While they are loaded, those
tables' secondary indexes are dropped, to be built once at the end, and SQLite neither syncs each
batch to disk nor keeps its small page cache (`_bulk_load`). A run that stops part-way leaves
the batches written so far, with the indexes built again: empty the database and run it again.
Audit entries and messages back are not generated. Deterministic for a seed and a `today`.
"""

from __future__ import annotations

import functools
import gc
import math
import operator
import random
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from time import perf_counter
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, Connection, Dialect, Table, bindparam, case, func, insert, select, text

from referrals import clock
from referrals.auth.models import Organisation, OrganisationKind, Role, User
from referrals.auth.passwords import hash_password
from referrals.clock import LONDON
from referrals.courses import rules
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Contract,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
    course_artist,
)
from referrals.courses.schedule import Frequency, Schedule, expand
from referrals.extensions import db
from referrals.intake.lifecycle import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING,
    SNOMED_SOCIAL_PRESCRIBING_DECLINED,
    Status,
)
from referrals.intake.models import ContactAttempt, Conversation, Patient, Referral
from referrals.intake.models import ReferralTransition as Transition
from referrals.outcomes.models import WellbeingAssessment
from referrals.outcomes.scoring import Instrument, Timepoint, score
from referrals.seeding.demo import DEMO_PASSWORD
from referrals.seeding.demo_referrals import (
    AGES,
    CLOSE_REASONS,
    ETHNICITY_NOT_STATED,
    NAME_GROUPS,
    PATHWAY_ART_FORMS,
    PATHWAY_SHARES,
    RISK_NOTES,
    SEXES,
    SITUATIONS,
    WHAT_MATTERS_ANY,
    WITHDRAWN_FROM_COURSE,
)
from referrals.vocab import (
    ArtForm,
    ContactMethod,
    ContactOutcome,
    Ethnicity,
    Pathway,
    ReferrerType,
    Sex,
)
from referrals.workdays import add_working_days as _uncached_add_working_days

_T = TypeVar("_T")

HISTORY_YEARS = 8
DOMAIN = "scale.test"
COMMISSIONERS = (
    "NHS Northmoor Integrated Care Board",
    "NHS Southvale Integrated Care Board",
    "Northmoor City Council Public Health",
    "Southvale County Council Public Health",
)
PRACTICES = 40
SERVICES = 4
LINK_WORKERS_PER_SERVICE = 10
PROVIDERS = 50
ARTISTS_PER_PROVIDER = 3
VENUES = 60
GROUP_SIZES = (12, 30)
BENCH_GROUP = 30
CHUNK_ROWS = 20_000  # rows buffered before a bulk insert and a commit
PLANNING_SAMPLE = 50_000  # referrals planned to aim the share reaching a course (see seed_scale)
MAX_SESSIONS = 12  # the most sessions a generated course has, so attendances per referral

ADMIN_EMAIL = f"admin@{DOMAIN}"
BENCH_LINK_WORKER = f"linkworker01@{DOMAIN}"
BENCH_GP = f"gp01@{DOMAIN}"
BENCH_ARTIST = f"artist001@{DOMAIN}"
BENCH_COMMISSIONER = f"commissioner1@{DOMAIN}"
SIGN_INS: dict[Role, str] = {
    Role.LINK_WORKER: BENCH_LINK_WORKER,
    Role.REFERRER: BENCH_GP,
    Role.ARTIST: BENCH_ARTIST,
    Role.COMMISSIONER: BENCH_COMMISSIONER,
    Role.ADMIN: ADMIN_EMAIL,
}

PRACTICE_KINDS = ("Surgery", "Medical Centre", "Health Centre", "Practice")
VENUE_KINDS = ("Community Centre", "Library", "Arts Centre")
TOWNS = [
    "Northmoor",
    "Ashby",
    "Barnford",
    "Carlow",
    "Dunmere",
    "Elstow",
    "Fenby",
    "Garth",
    "Holme",
    "Ingleby",
    "Kelby",
    "Langley",
    "Marston",
    "Netherby",
    "Oakham",
    "Penrith",
    "Quarley",
    "Redmire",
    "Selby",
    "Thornby",
]
PROVIDER_KINDS = (
    (ArtForm.SINGING, "Voices", "Singing for Breathing"),
    (ArtForm.MUSIC, "Music Makers", "Music Together"),
    (ArtForm.VISUAL_ART, "Arts Studio", "Paint and Chat"),
    (ArtForm.CRAFTS, "Craft Collective", "Make and Mend"),
    (ArtForm.DANCE, "Dance", "Moving Well"),
    (ArtForm.DRAMA, "Theatre Company", "Stories and Stages"),
    (ArtForm.WRITING, "Writers", "Words for Wellbeing"),
    (ArtForm.PHOTOGRAPHY, "Lens Club", "Seeing Differently"),
    (ArtForm.HERITAGE, "Museum", "Objects and Memories"),
)
FIRST_NAMES = [
    "Alex",
    "Sam",
    "Jo",
    "Chris",
    "Kim",
    "Lee",
    "Robin",
    "Charlie",
    "Jamie",
    "Morgan",
    "Taylor",
    "Casey",
    "Jordan",
    "Riley",
    "Avery",
    "Quinn",
    "Rowan",
    "Sasha",
    "Toni",
    "Frankie",
]
FAMILY_NAMES = [
    "Ashworth",
    "Barker",
    "Carver",
    "Dawson",
    "Ellis",
    "Fowler",
    "Garner",
    "Hewitt",
    "Irving",
    "Jarvis",
    "Kendall",
    "Lawson",
    "Marsh",
    "Norris",
    "Oakley",
    "Pearce",
    "Quigley",
    "Rowe",
    "Slater",
    "Tranter",
]


@dataclass
class ScaleReport:
    """What was made: rows per table, seconds taken and the sign-in e-mail for each role."""

    counts: dict[str, int]
    seconds: float
    sign_ins: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchTargets:
    """Ids a benchmark needs, found in a generated scheme (see `scale_bench_targets`)."""

    link_worker_id: int
    gp_id: int
    artist_id: int
    commissioner_id: int
    admin_id: int
    course_id: int  # the artist's course with a session today
    session_id: int  # that session; its register lists `register_size` people
    register_size: int
    contract_id: int  # a contract of the commissioner
    referral_id: int  # an open referral assigned to the link worker, with history
    emails: dict[str, str]


# --- Planning ----------------------------------------------------------------------------------


# The plan holds every referral until it is written, so it is kept as columns of machine
# numbers (about 50 bytes a referral), not as an object each (about 850 bytes with its dates
# and lists): a million referrals plan in tens of megabytes. `_Referral` and `_Member` are
# views of one row, made when asked for.

_OUTCOMES = ("", "unable", "declined", "not_suitable", "declined_after", "course")
_PATHWAYS = tuple(Pathway)
_CLOSING = (Status.UNABLE_TO_CONTACT, Status.DECLINED, Status.NOT_SUITABLE)
_CONTACT_OUTCOMES = (ContactOutcome.NO_ANSWER, ContactOutcome.LEFT_MESSAGE, ContactOutcome.SPOKE)
_CONTACT_BITS = 5  # per contact: 3 bits of working days since the last (1-5), 2 of outcome


class _Referrals:
    """The planned referrals, one row per referral (id = row + 1), in columns."""

    COLUMNS = {
        "received": "i",  # date ordinals; 0 for none
        "patient": "i",
        "new_patient": "b",
        "practice": "b",
        "pathway": "b",  # index into _PATHWAYS
        "outcome": "b",  # index into _OUTCOMES
        "contacts": "l",  # contact steps and outcomes, _CONTACT_BITS each, first lowest
        "assessed": "i",
        "close_status": "b",  # 1 + index into _CLOSING; 0 for none
        "close_day": "i",
        "course": "i",  # index into the course plan once matched, else -1
        "slot": "h",  # place in that course's member list
        # As a member of their course:
        "enrolled_on": "i",
        "leave": "h",  # sessions (by index) they stay for; == session count to the end
        "reliability": "d",
        "waitlisted": "b",
    }

    def __init__(self) -> None:
        self.columns: dict[str, array[Any]] = {
            name: array(code) for name, code in self.COLUMNS.items()
        }

    def add(self, received: date) -> _Referral:
        row = len(self)
        for name, column in self.columns.items():
            column.append(-1 if name == "course" else 0)
        self.columns["received"][row] = received.toordinal()
        self.columns["new_patient"][row] = 1
        return _Referral(self, row)

    def __len__(self) -> int:
        return len(self.columns["received"])

    def __getitem__(self, row: int) -> _Referral:
        return _Referral(self, row)

    def __iter__(self) -> Iterator[_Referral]:
        return (_Referral(self, row) for row in range(len(self)))


class _Int:
    """A whole-number column of `_Referrals`, read and written through a row view."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, view: _Row, owner: type | None = None) -> int:
        return int(view.store.columns[self.name][view.row])

    def __set__(self, view: _Row, value: int) -> None:
        view.store.columns[self.name][view.row] = value


class _Flag(_Int):
    def __get__(self, view: _Row, owner: type | None = None) -> bool:
        return bool(view.store.columns[self.name][view.row])

    def __set__(self, view: _Row, value: bool) -> None:  # type: ignore[override]
        view.store.columns[self.name][view.row] = int(value)


class _Day(_Int):
    def __get__(self, view: _Row, owner: type | None = None) -> date:  # type: ignore[override]
        return date.fromordinal(view.store.columns[self.name][view.row])

    def __set__(self, view: _Row, value: date) -> None:  # type: ignore[override]
        view.store.columns[self.name][view.row] = value.toordinal()


class _MaybeDay(_Int):
    def __get__(  # type: ignore[override]
        self, view: _Row, owner: type | None = None
    ) -> date | None:
        ordinal = view.store.columns[self.name][view.row]
        return date.fromordinal(ordinal) if ordinal else None

    def __set__(self, view: _Row, value: date | None) -> None:  # type: ignore[override]
        view.store.columns[self.name][view.row] = value.toordinal() if value else 0


class _Coded(_Int, Generic[_T]):
    def __init__(self, values: Sequence[_T]) -> None:
        self.values = values
        self.codes = {value: code for code, value in enumerate(values)}

    def __get__(self, view: _Row, owner: type | None = None) -> _T:  # type: ignore[override]
        return self.values[view.store.columns[self.name][view.row]]

    def __set__(self, view: _Row, value: _T) -> None:  # type: ignore[override]
        view.store.columns[self.name][view.row] = self.codes[value]


class _Row:
    __slots__ = ("row", "store")

    def __init__(self, store: _Referrals, row: int) -> None:
        self.store = store
        self.row = row

    @property
    def id(self) -> int:
        return self.row + 1


class _Referral(_Row):
    """One planned referral."""

    __slots__ = ()
    received = _Day()
    patient = _Int()
    new_patient = _Flag()
    practice = _Int()
    pathway = _Coded(_PATHWAYS)
    outcome = _Coded(_OUTCOMES)
    assessed = _MaybeDay()
    course = _Int()
    slot = _Int()

    @property
    def close(self) -> tuple[Status, date] | None:
        code = self.store.columns["close_status"][self.row]
        if not code:
            return None
        return _CLOSING[code - 1], date.fromordinal(self.store.columns["close_day"][self.row])

    @close.setter
    def close(self, value: tuple[Status, date]) -> None:
        self.store.columns["close_status"][self.row] = _CLOSING.index(value[0]) + 1
        self.store.columns["close_day"][self.row] = value[1].toordinal()

    def set_contacts(self, steps: Sequence[tuple[int, ContactOutcome]]) -> None:
        """Each contact attempt: working days after the last one (or the referral), outcome."""
        packed = 0
        for n, (days, outcome) in enumerate(steps):
            packed |= (days | _CONTACT_OUTCOMES.index(outcome) << 3) << (n * _CONTACT_BITS)
        self.store.columns["contacts"][self.row] = packed

    @property
    def contacts(self) -> list[tuple[date, ContactOutcome]]:
        packed, day, made = self.store.columns["contacts"][self.row], self.received, []
        while packed:  # every contact's steps are 1 or more, so its bits are never all zero
            day = add_working_days(day, packed & 7)
            made.append((day, _CONTACT_OUTCOMES[packed >> 3 & 3]))
            packed >>= _CONTACT_BITS
        return made


class _Member(_Row):
    """A planned referral as a member of its course."""

    __slots__ = ()
    enrolled_on = _Day()
    leave = _Int()
    waitlisted = _Flag()

    @property
    def referral(self) -> int:
        return self.id

    @property
    def reliability(self) -> float:
        return float(self.store.columns["reliability"][self.row])

    @reliability.setter
    def reliability(self, value: float) -> None:
        self.store.columns["reliability"][self.row] = value


class _Members:
    """A course's members: rows of the referrals' plan, seen as `_Member`s."""

    __slots__ = ("rows", "store")

    def __init__(self, store: _Referrals) -> None:
        self.store = store
        self.rows = array("i")

    def append(self, member: _Member) -> None:
        self.rows.append(member.row)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, slot: int) -> _Member:
        return _Member(self.store, self.rows[slot])

    def __iter__(self) -> Iterator[_Member]:
        return (_Member(self.store, row) for row in self.rows)


@dataclass
class _Course:
    id: int
    provider: int
    artist: int
    venue: int
    art_form: ArtForm
    title: str
    capacity: int
    start: date
    start_time: time
    duration: int
    dates: list[date]
    cancelled: set[int]
    members: _Members

    def delivered(self, today: date) -> list[int]:
        return [i for i, d in enumerate(self.dates) if d < today and i not in self.cancelled]

    @property
    def finished_by(self) -> date:
        return max(d for i, d in enumerate(self.dates) if i not in self.cancelled)


# Generated history asks the same few thousand days' working-day sums over and over; one date
# object per answer also keeps the plan small.
add_working_days = functools.cache(_uncached_add_working_days)


def _weighted(rng: random.Random, options: Sequence[tuple[_T, float]]) -> _T:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


@functools.cache
def _working_day_on_or_before(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


@functools.cache
def _london_offset(day: date) -> timedelta:
    """London's offset from UTC in the day's waking hours: the clocks change at 01:00 UTC,
    before any time generated here, so one offset serves the whole day."""
    offset = datetime.combine(day, time(12), tzinfo=LONDON).utcoffset()
    assert offset is not None
    return offset


def _at(day: date, rng: random.Random, start: int = 9, end: int = 17) -> datetime:
    """A time in London's working hours that day, in UTC."""
    minutes = rng.randrange(start * 60, end * 60)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return midnight + (timedelta(minutes=minutes) - _london_offset(day))


# Every register of a session is recorded at the same time, so each is worked out once while
# its course's people are written (they are written close together).
@functools.lru_cache(maxsize=1 << 14)
def _session_end(day: date, start: time, duration: int) -> datetime:
    local = datetime.combine(day, start, tzinfo=LONDON) + timedelta(minutes=duration)
    return local.astimezone(UTC)


@dataclass
class _World:
    """Ids of everything small, made before the referrals."""

    practices: list[int]  # organisation ids
    practice_gp: list[int]  # user id of each practice's GP
    practice_link_worker: list[int]  # user id of the link worker covering each practice
    providers: list[
        tuple[int, ArtForm, str, list[int], list[int]]
    ]  # id, art, name, artists, venues
    contracts: list[tuple[int, int, date, date]]  # id, commissioner index, start, end
    provider_commissioner: list[int]
    users: int
    organisations: int


class _Planner:
    def __init__(self, n: int, today: date, seed: int, enrol_share: float) -> None:
        self.n = n
        self.today = today
        self.seed = seed
        self.enrol_share = enrol_share
        self.start = today - timedelta(days=365 * HISTORY_YEARS)

    def referrals(self) -> _Referrals:
        """When each referral arrived and how its intake went (before any course)."""
        rng = random.Random(self.seed)  # noqa: S311 - generated data
        span = (self.today - self.start).days
        # A scheme that grows: referrals per day rise by half over the years.
        offsets = sorted(span * math.sqrt(rng.random() * 0.8 + 0.2) / 1.0 for _ in range(self.n))
        low = span * math.sqrt(0.2)
        refs = _Referrals()
        patients = 0
        pathways = list(PATHWAY_SHARES.items())
        for index, offset in enumerate(offsets):
            day = self.start + timedelta(days=int((offset - low) / (span - low) * (span - 1)))
            ref = refs.add(_working_day_on_or_before(min(day, self.today)))
            ref.practice = rng.randrange(PRACTICES)
            ref.pathway = _weighted(rng, pathways)
            earlier = index - rng.randrange(self.n // 8 + 1, self.n // 2 + 2)
            if index > self.n // 3 and earlier >= 0 and rng.random() < 0.08:
                previous = refs[earlier]
                if (ref.received - previous.received).days > 400 and previous.new_patient:
                    ref.patient = previous.patient
                    ref.new_patient = False
                    ref.practice = previous.practice
            if ref.new_patient:
                patients += 1
                ref.patient = patients
            self._intake(rng, ref)
        return refs

    def _intake(self, rng: random.Random, ref: _Referral) -> None:
        roll = rng.random()
        closed_before = 1 - self.enrol_share
        if roll < closed_before * 0.4:
            ref.outcome = "unable"
        elif roll < closed_before * 0.7:
            ref.outcome = "declined"
        elif roll < closed_before * 0.85:
            ref.outcome = "not_suitable"
        elif roll < closed_before:
            ref.outcome = "declined_after"
        else:
            ref.outcome = "course"
        step = rng.randint(1, 5)
        day = add_working_days(ref.received, step)
        failures = (
            3 if ref.outcome == "unable" else _weighted(rng, [(0, 0.65), (1, 0.25), (2, 0.1)])
        )
        contacts: list[tuple[int, ContactOutcome]] = []
        for _ in range(failures):
            contacts.append(
                (step, rng.choice((ContactOutcome.NO_ANSWER, ContactOutcome.LEFT_MESSAGE)))
            )
            step = rng.randint(2, 4)
            day = add_working_days(day, step)
        if ref.outcome == "unable":
            ref.set_contacts(contacts)
            ref.close = (Status.UNABLE_TO_CONTACT, add_working_days(day, 5))
            return
        contacts.append((step, ContactOutcome.SPOKE))
        ref.set_contacts(contacts)
        if ref.outcome in ("declined", "not_suitable"):
            status = Status.DECLINED if ref.outcome == "declined" else Status.NOT_SUITABLE
            ref.close = (status, day)
            return
        ref.assessed = add_working_days(day, rng.randint(2, 8))
        if ref.outcome == "declined_after":
            ref.close = (Status.DECLINED, add_working_days(ref.assessed, rng.randint(3, 15)))

    def courses(self, refs: _Referrals, world: _World) -> list[_Course]:
        """Fill courses with assessed people in the order they were assessed."""
        rng = random.Random(self.seed + 1)  # noqa: S311 - generated data
        # In the order assessed, then received; read from the columns, as one number each.
        assessed, outcome = refs.columns["assessed"], refs.columns["outcome"]
        to_course, last = _OUTCOMES.index("course"), self.today.toordinal()
        rows = [r for r in range(len(refs)) if outcome[r] == to_course and 0 < assessed[r] <= last]
        rows.sort(key=lambda r: assessed[r] << 32 | r)
        waiting = [refs[r] for r in rows]
        del rows
        # The bench course: the last people assessed a fortnight or more ago, on a course that
        # meets on today's weekday and has a session today.
        cutoff = self.today - timedelta(days=14)
        before = [i for i, r in enumerate(waiting) if r.assessed and r.assessed <= cutoff]
        bench_members: list[_Referral] = []
        if before:
            last = before[-1] + 1
            bench_members = waiting[max(0, last - BENCH_GROUP) : last]
            del waiting[max(0, last - BENCH_GROUP) : last]
        plan: list[_Course] = []
        at = 0
        groups: list[tuple[list[_Referral], bool]] = []
        while at < len(waiting):
            size = rng.randint(*GROUP_SIZES)
            groups.append((waiting[at : at + size], False))
            at += size
        if bench_members:
            # Courses are numbered in start order, near enough; the bench one goes among them.
            position = sum(1 for g, _ in groups if (g[-1].assessed or self.today) <= cutoff)
            groups.insert(position, (bench_members, True))
        for group, bench in groups:
            filled = group[-1].assessed
            assert filled is not None
            if bench:
                days = (self.today - filled).days
                start = self.today - timedelta(weeks=max(1, min(5, (days - 1) // 7)))
                provider = 0
                artist = world.providers[0][3][0]
                sessions = 12
                skip = False
            else:
                start = filled + timedelta(days=rng.randint(7, 21))
                provider = rng.randrange(PROVIDERS)
                artist = rng.choice(world.providers[provider][3])
                sessions = _weighted(rng, [(10, 0.2), (11, 0.2), (12, 0.6)])
                skip = True
                if start > self.today:
                    # Not started yet: the most recently assessed are not matched yet.
                    recent = self.today - timedelta(days=2)
                    group = [r for r in group if r.assessed and r.assessed <= recent]
                    if not group:
                        continue
            pid, art, name, _artists, venues = world.providers[provider]
            schedule = Schedule(
                start_date=start,
                start_time=rng.choice((time(10), time(10, 30), time(13, 30), time(14), time(18))),
                duration_minutes=rng.choice((90, 120)),
                frequency=Frequency.WEEKLY,
                sessions=sessions,
                skip_bank_holidays=skip,
            )
            dates = [s.date for s in expand(schedule)]
            cancelled = {
                i
                for i in range(1, sessions - 1)
                if dates[i] != self.today and rng.random() < 0.01 and not bench
            }
            course = _Course(
                id=len(plan) + 1,
                provider=pid,
                artist=artist,
                venue=rng.choice(venues),
                art_form=art,
                title=f"{PROVIDER_KINDS[provider % len(PROVIDER_KINDS)][2]}: {name}, {start:%B %Y}",
                capacity=len(group),
                start=start,
                start_time=schedule.start_time,
                duration=schedule.duration_minutes,
                dates=dates,
                cancelled=cancelled,
                members=_Members(refs),
            )
            waitlisted = len(group) - rng.choice((0, 0, 1, 2)) if start > self.today else len(group)
            for slot, ref in enumerate(group):
                assert ref.assessed is not None
                latest = start - timedelta(days=1)
                enrolled_on = max(
                    ref.assessed, min(ref.assessed + timedelta(days=rng.randint(0, 4)), latest)
                )
                roll = rng.random()
                reliability = rng.uniform(0.72, 1.0)
                if bench:
                    leave = sessions
                elif roll < 0.05:
                    leave, reliability = 2, 0.0  # did not start: missed the first two
                elif roll < 0.15:
                    leave = rng.randint(2, sessions - 1)
                else:
                    leave = sessions
                member = _Member(refs, ref.row)
                member.enrolled_on, member.leave = enrolled_on, leave
                member.reliability = reliability
                member.waitlisted = slot >= waitlisted
                ref.course, ref.slot = len(plan), slot
                course.members.append(member)
            course.capacity = sum(1 for m in course.members if not m.waitlisted)
            plan.append(course)
        return plan


def _rows(course: _Course, member: _Member, today: date) -> int:
    return sum(1 for i in course.delivered(today) if i < member.leave)


def _tune(plan: list[_Course], target: int, today: date) -> int:
    """Move when people stopped coming so the attendance rows come to `target`; the total."""
    total = 0
    delivered_by_course = []
    for course in plan:
        delivered = set(course.delivered(today))
        delivered_by_course.append(delivered)
        total += sum(sum(1 for i in delivered if i < m.leave) for m in course.members)
    # Only courses that have finished, so nobody's future is decided early.
    finished = [
        (course, delivered_by_course[i])
        for i, course in enumerate(plan)
        if course.finished_by < today and course.members
    ]
    for _pass in range(6):
        if total == target:
            break
        for course, delivered in finished:
            if total == target:
                break
            for member in course.members:
                if total == target:
                    break
                sessions = len(course.dates)
                if total < target and member.leave < sessions:
                    member.leave += 1
                    total += member.leave - 1 in delivered
                elif total > target and member.leave > 1:
                    member.leave -= 1
                    total -= member.leave in delivered
    return total


# --- Writing -----------------------------------------------------------------------------------


class _Table:
    """How one table's rows go to the driver: its columns in a fixed order, each with the
    conversion SQLAlchemy would apply to it (so the stored values are the ones a Core insert
    stores), and the statement that loads a batch."""

    def __init__(self, table: Table, names: Sequence[str], dialect: Dialect) -> None:
        omitted = [c for c in table.columns if c.name not in names]
        defaulted = [c.name for c in omitted if c.default is not None or c.server_default]
        if defaulted:
            raise RuntimeError(f"{table.name}: give {', '.join(defaulted)} (they have defaults)")
        self.table = table
        self.names = tuple(names)
        self.pick = operator.itemgetter(*self.names)
        self.convert: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(self.names):
            kind = table.c[name].type
            processor = kind.dialect_impl(dialect).bind_processor(dialect)
            if processor is None:
                continue
            if not isinstance(kind, JSON):
                # The same statuses, days and register times come over and over: each
                # value is converted once (JSON values are lists, which cannot be kept).
                processor = functools.lru_cache(maxsize=1 << 12, typed=True)(processor)
            self.convert.append((i, processor))
        quote = dialect.identifier_preparer.quote
        self.target = f"{quote(table.name)} ({', '.join(quote(n) for n in self.names)})"
        self.copy = dialect.driver == "psycopg"  # psycopg 3 streams rows through COPY
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join([mark] * len(self.names))
        # The names come from the schema and every value is bound.
        self.insert = f"INSERT INTO {self.target} VALUES ({marks})"  # noqa: S608

    def row(self, values: dict[str, Any]) -> tuple[Any, ...]:
        row = list(self.pick(values))
        for i, processor in self.convert:
            row[i] = processor(row[i])
        return tuple(row)

    def load(self, connection: Any, rows: list[tuple[Any, ...]]) -> None:
        """One batch in one statement: COPY on PostgreSQL, an executemany elsewhere."""
        cursor = connection.cursor()
        try:
            if self.copy:
                with cursor.copy(f"COPY {self.target} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(self.insert, rows)
        finally:
            cursor.close()


# SQLite's page cache while loading (KiB, as `PRAGMA cache_size` takes a negative number).
LOAD_CACHE_KIB = 32 * 1024


@contextmanager
def _bulk_load(tables: Sequence[Table]) -> Iterator[Connection]:
    """A connection of its own to load the tables through, committing batch by batch.

    The tables' secondary indexes are dropped while their rows are loaded and built again at
    the end from the whole table at once, far quicker than keeping them up row by row in
    random order; SQLite meanwhile keeps a larger page cache and does not wait for each batch
    to reach the disk (a run cut short is begun again on an empty database anyway). Keys and
    unique and foreign-key constraints stay in force throughout. However the load ends, the
    indexes are built again and the connection's settings restored."""
    names = {"names": [t.name for t in tables]}
    with db.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        with connection.begin():
            found = connection.execute(_SQLITE_INDEXES if sqlite else _PG_INDEXES, names).all()
            quote = connection.dialect.identifier_preparer.quote
            for name, _definition in found:
                connection.exec_driver_sql(f"DROP INDEX {quote(name)}")
        driver = connection.connection.dbapi_connection
        assert driver is not None
        settings: list[tuple[str, int]] = []
        if sqlite:  # outside any transaction: the driver is in autocommit (see referrals.db)
            for pragma, value in (("synchronous", 0), ("cache_size", -LOAD_CACHE_KIB)):
                settings.append((pragma, int(driver.execute(f"PRAGMA {pragma}").fetchone()[0])))
                driver.execute(f"PRAGMA {pragma} = {value:d}")
        try:
            yield connection
        finally:
            if connection.in_transaction():
                connection.rollback()
            with connection.begin():
                if not sqlite:
                    connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
                for _name, definition in found:
                    connection.exec_driver_sql(definition)
            for pragma, previous in settings:
                driver.execute(f"PRAGMA {pragma} = {previous:d}")


# The indexes a load drops and builds again: all but those that keep a key or a constraint.
_SQLITE_INDEXES = text(
    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    " AND tbl_name IN :names ORDER BY name"
).bindparams(bindparam("names", expanding=True))
_PG_INDEXES = text(
    "SELECT indexname, indexdef FROM pg_indexes i"
    " WHERE schemaname = current_schema() AND tablename IN :names"
    " AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conname = i.indexname)"
    " ORDER BY indexname"
).bindparams(bindparam("names", expanding=True))


class _Writer:
    """Buffers rows per table, converted as they come, and hands each table's batch to the
    database driver in one statement, parents before children.

    SQLAlchemy's bulk insert builds and converts a parameter dictionary per row; at millions
    of rows that costs more than the database's own work, so rows go straight to the driver
    (`_Table` converts each value as SQLAlchemy would)."""

    ORDER = (
        Patient.__table__,
        Referral.__table__,
        Transition.__table__,
        ContactAttempt.__table__,
        Conversation.__table__,
        Enrolment.__table__,
        Attendance.__table__,
        WellbeingAssessment.__table__,
    )

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.tables: dict[Table, _Table] = {}
        self.rows: dict[Table, list[tuple[Any, ...]]] = {t: [] for t in self.ORDER}
        self.counts: dict[str, int] = {t.name: 0 for t in self.ORDER}
        self.buffered = 0

    def add(self, table: Table, row: dict[str, Any]) -> int:
        loader = self.tables.get(table)
        if loader is None:  # the first row names the columns every later row gives
            loader = self.tables[table] = _Table(table, list(row), self.dialect)
        self.rows[table].append(loader.row(row))
        self.counts[table.name] += 1
        self.buffered += 1
        return self.counts[table.name]

    def next_id(self, table: Table) -> int:
        return self.counts[table.name] + 1

    def maybe_flush(self) -> None:
        if self.buffered >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        """Load what is buffered and commit it: the journal, and memory, stay one batch."""
        with self.connection.begin():
            driver = self.connection.connection.dbapi_connection
            for table in self.ORDER:
                rows = self.rows[table]
                if rows:
                    self.tables[table].load(driver, rows)
                    rows.clear()
        self.buffered = 0


def _bulk(table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK_ROWS):
        db.session.execute(insert(table), rows[start : start + CHUNK_ROWS])


# NHS numbers from 900 000 0000 up are never issued to patients (they are kept for testing), so
# generated people can never be mistaken for real ones. The first 199,999 people take the 999
# range, as they always have; later ones go on from 900 000 000. Stepping by 5 leaves room for
# the odd base whose mod-11 check digit would be 10 (never two such bases in a row).
NHS_NUMBER_STEP = 5
_FIRST_RANGE = 999_000_000
_SECOND_RANGE = 900_000_000
_FIRST_RANGE_PEOPLE = (1_000_000 - 1) // NHS_NUMBER_STEP  # 199,999: n * 5 + 4 < 1,000,000
MAX_GENERATED_PEOPLE = _FIRST_RANGE_PEOPLE + (_FIRST_RANGE - _SECOND_RANGE) // NHS_NUMBER_STEP


def generated_nhs_number(n: int) -> str:
    """The n-th generated person's NHS number (n from 1): valid mod 11, unique, never issued."""
    if not 1 <= n <= MAX_GENERATED_PEOPLE:
        raise ValueError(f"generated people are numbered 1 to {MAX_GENERATED_PEOPLE:,}")
    if n <= _FIRST_RANGE_PEOPLE:
        base = _FIRST_RANGE + n * NHS_NUMBER_STEP
    else:
        base = _SECOND_RANGE + (n - _FIRST_RANGE_PEOPLE - 1) * NHS_NUMBER_STEP
    while True:
        digits = f"{base:09d}"
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            return digits + str(check)
        base += 1


def _make_world(today: date, start: date, password_hash: str) -> _World:
    now = datetime.now(UTC)
    orgs: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []

    def org(name: str, kind: OrganisationKind, ods: str | None = None) -> int:
        orgs.append({"id": len(orgs) + 1, "name": name, "kind": kind, "ods_code": ods})
        return len(orgs)

    def user(email: str, name: str, role: Role, organisation: int) -> int:
        users.append(
            {
                "id": len(users) + 1,
                "email": email,
                "name": name,
                "role": role,
                "organisation_id": organisation,
                "password_hash": password_hash,
                "password_changed_at": now,
            }
        )
        return len(users)

    def person(n: int) -> str:
        return f"{FIRST_NAMES[n % len(FIRST_NAMES)]} {FAMILY_NAMES[(n // 3) % len(FAMILY_NAMES)]}"

    commissioners = [org(name, OrganisationKind.COMMISSIONER) for name in COMMISSIONERS]
    practices = [
        org(
            f"{TOWNS[i % len(TOWNS)]} {PRACTICE_KINDS[i // 10 % 4]}",
            OrganisationKind.GP_PRACTICE,
            f"L{85001 + i}",
        )
        for i in range(PRACTICES)
    ]
    services = [
        org(f"{TOWNS[i * 5]} Social Prescribing Service", OrganisationKind.LINK_WORKER_SERVICE)
        for i in range(SERVICES)
    ]
    providers = []
    for i in range(PROVIDERS):
        art, suffix, _title = PROVIDER_KINDS[i % len(PROVIDER_KINDS)]
        name = f"{TOWNS[(i * 7) % len(TOWNS)]} {suffix} {i + 1:02d}"
        providers.append((org(name, OrganisationKind.PROVIDER), art, name))
    user(ADMIN_EMAIL, "Alex Admin", Role.ADMIN, services[0])
    for i, commissioner in enumerate(commissioners):
        for j in range(2):
            user(
                f"commissioner{i * 2 + j + 1}@{DOMAIN}",
                person(i * 2 + j),
                Role.COMMISSIONER,
                commissioner,
            )
    practice_gp = [
        user(f"gp{i + 1:02d}@{DOMAIN}", f"Dr {person(i + 8)}", Role.REFERRER, practice)
        for i, practice in enumerate(practices)
    ]
    link_workers = [
        user(
            f"linkworker{i + 1:02d}@{DOMAIN}",
            person(i + 50),
            Role.LINK_WORKER,
            services[i // LINK_WORKERS_PER_SERVICE],
        )
        for i in range(SERVICES * LINK_WORKERS_PER_SERVICE)
    ]
    artists: list[list[int]] = []
    for p, (provider_id, _art, _name) in enumerate(providers):
        artists.append(
            [
                user(
                    f"artist{p * ARTISTS_PER_PROVIDER + a + 1:03d}@{DOMAIN}",
                    person(p * 3 + a + 100),
                    Role.ARTIST,
                    provider_id,
                )
                for a in range(ARTISTS_PER_PROVIDER)
            ]
        )
    _bulk(Organisation.__table__, orgs)
    _bulk(User.__table__, users)

    venues = [
        {
            "id": i + 1,
            "name": f"{TOWNS[i % len(TOWNS)]} {VENUE_KINDS[i // 20]}",
            "address": f"{i + 1} High Street, {TOWNS[i % len(TOWNS)]}",
            "postcode": f"NM{i % 20 + 1} {i % 9 + 1}AB",
            "accessibility": "Step-free entrance and an accessible toilet" if i % 3 else "",
        }
        for i in range(VENUES)
    ]
    _bulk(Venue.__table__, venues)

    contracts: list[dict[str, Any]] = []
    contract_spans: list[tuple[int, int, date, date]] = []
    # Two-year contracts from April, the current one started at least a year ago, so every
    # commissioner has a year of finished months to report on.
    anchor = date(today.year - 1 if today.month >= 4 else today.year - 2, 4, 1)
    while anchor > start:
        anchor = anchor.replace(year=anchor.year - 2)
    for c, commissioner in enumerate(commissioners):
        begin = anchor
        while begin <= today + timedelta(days=365):
            end = begin.replace(year=begin.year + 2) - timedelta(days=1)
            contract_id = len(contracts) + 1
            contracts.append(
                {
                    "id": contract_id,
                    "name": f"{COMMISSIONERS[c]} arts on prescription "
                    f"{begin.year}-{end.year % 100:02d}",
                    "commissioner_id": commissioner,
                    "start_date": begin,
                    "end_date": end,
                    "targets": {
                        "B1": {"month": {"minimum": 150, "expected": 200, "stretch": 250}},
                        "B4": {"month": {"minimum": 80, "expected": 100, "stretch": 120}},
                        "B6": {"month": {"minimum": 70, "expected": 75, "stretch": 85}},
                        "B7": {"month": {"minimum": 30, "expected": 40, "stretch": 60}},
                    },
                }
            )
            contract_spans.append((contract_id, c, begin, end))
            begin = end + timedelta(days=1)
    _bulk(Contract.__table__, contracts)

    return _World(
        practices=practices,
        practice_gp=practice_gp,
        practice_link_worker=[link_workers[i % len(link_workers)] for i in range(PRACTICES)],
        providers=[
            (pid, art, name, artists[p], [p % VENUES + 1, (p + PROVIDERS) % VENUES + 1])
            for p, (pid, art, name) in enumerate(providers)
        ],
        contracts=contract_spans,
        provider_commissioner=[p % len(commissioners) for p in range(PROVIDERS)],
        users=len(users),
        organisations=len(orgs),
    )


def _write_courses(plan: list[_Course], world: _World, today: date) -> dict[str, int]:
    """Courses, their artists and sessions, inserted a batch at a time (parents first)."""
    courses: list[dict[str, Any]] = []
    artists: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    written = {"course": 0, "course_session": 0}

    def write() -> None:
        _bulk(Course.__table__, courses)
        _bulk(course_artist, artists)
        _bulk(CourseSession.__table__, sessions)
        written["course"] += len(courses)
        written["course_session"] += len(sessions)
        for rows in (courses, artists, sessions):
            rows.clear()

    session_id = 0
    provider_index = {p[0]: i for i, p in enumerate(world.providers)}
    for course in plan:
        commissioner = world.provider_commissioner[provider_index[course.provider]]
        contract = next(
            cid
            for cid, c, begin, end in world.contracts
            if c == commissioner and begin <= course.start <= end
        )
        courses.append(
            {
                "id": course.id,
                "title": course.title,
                "description": "A friendly weekly group; no experience needed.",
                "art_form": course.art_form,
                "provider_id": course.provider,
                "contract_id": contract,
                "venue_id": course.venue,
                "pathways": [],
                "capacity": course.capacity,
                "cost_per_session_pence": 4500,
                "start_date": course.start,
                "start_time": course.start_time,
                "duration_minutes": course.duration,
                "frequency": Frequency.WEEKLY,
                "session_count": len(course.dates),
                "taster_count": 0,
            }
        )
        artists.append({"course_id": course.id, "user_id": course.artist})
        for i, day in enumerate(course.dates):
            session_id += 1
            if i in course.cancelled:
                status = SessionStatus.CANCELLED
            elif day < today:
                status = SessionStatus.DELIVERED
            else:
                status = SessionStatus.PLANNED
            delivered = status is SessionStatus.DELIVERED
            sessions.append(
                {
                    "id": session_id,
                    "course_id": course.id,
                    "sequence": i + 1,
                    "date": day,
                    "start_time": course.start_time,
                    "duration_minutes": course.duration,
                    "is_taster": False,
                    "status": status,
                    "cancelled_reason": "Artist unwell" if i in course.cancelled else "",
                    "register_saved_at": (
                        _session_end(day, course.start_time, course.duration)
                        + timedelta(minutes=30)
                        if delivered
                        else None
                    ),
                    "register_saved_by_id": course.artist if delivered else None,
                }
            )
        if len(sessions) >= CHUNK_ROWS:
            write()
    write()
    return written


class _Emitter:
    """Writes each referral with everything that happened to it, in the order received."""

    def __init__(
        self, world: _World, plan: list[_Course], today: date, seed: int, writer: _Writer
    ) -> None:
        self.world = world
        self.plan = plan
        self.today = today
        self.rng = random.Random(seed + 2)  # noqa: S311 - generated data
        self.w = writer
        self.first_session_id: list[int] = []
        sid = 0
        for course in plan:
            self.first_session_id.append(sid + 1)
            sid += len(course.dates)
        self.scores: dict[tuple[int, ...], tuple[int, Decimal]] = {}

    # People.

    def patient(self, ref: _Referral, at: datetime) -> None:
        rng = self.rng
        low, high, mode = AGES[ref.pathway]
        age = int(rng.triangular(low, high, mode))
        born = ref.received - timedelta(days=age * 365 + rng.randrange(365))
        group = _weighted(rng, [(g, g.share) for g in NAME_GROUPS])
        sex = _weighted(rng, SEXES)
        female = sex is Sex.FEMALE or (sex is not Sex.MALE and rng.random() < 0.5)
        if group.female_by_age:
            band = 0 if age < 38 else 1 if age < 68 else 2
            given = rng.choice((group.female_by_age if female else group.male_by_age)[band])
        else:
            given = rng.choice(group.female if female else group.male)
        ethnicity = Ethnicity.NOT_STATED if rng.random() < ETHNICITY_NOT_STATED else group.ethnicity
        phone = f"07700{rng.randrange(900_000, 901_000)}"  # Ofcom's range kept for drama
        self.w.add(
            Patient.__table__,
            {
                "id": ref.patient,
                "nhs_number": generated_nhs_number(ref.patient),
                "given_name": given,
                "family_name": rng.choice(group.family),
                "date_of_birth": born,
                "sex": sex,
                "ethnicity": ethnicity,
                "postcode": f"NM{ref.practice % 20 + 1} {rng.randint(1, 9)}"
                f"{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTU')}",
                "phone": phone,
                "email": None if rng.random() < 0.5 else f"p{ref.patient}@example.org",
                "preferred_contact": ContactMethod.PHONE
                if rng.random() < 0.8
                else ContactMethod.EMAIL,
                "gp_practice_id": self.world.practices[ref.practice],
                "communication_needs": "",
                "access_needs": "",
                "created_at": at,
                "updated_at": at,
            },
        )

    # One referral and its history.

    def referral(self, ref: _Referral) -> None:
        rng, w, today = self.rng, self.w, self.today
        lw = self.world.practice_link_worker[ref.practice]
        gp = self.world.practice_gp[ref.practice]
        referrer_type = _weighted(
            rng,
            [
                (ReferrerType.GP, 0.7),
                (ReferrerType.LINK_WORKER, 0.15),
                (ReferrerType.OTHER_HEALTH_PROFESSIONAL, 0.1),
                (ReferrerType.SELF, 0.05),
            ],
        )
        referred_by = gp if referrer_type is ReferrerType.GP else lw
        received_at = _at(ref.received, rng)
        if ref.new_patient:
            self.patient(ref, received_at)
        steps: list[tuple[Status | None, Status, datetime, date, int, str, str, str | None]] = []
        status = Status.RECEIVED
        steps.append((None, status, received_at, ref.received, referred_by, "", "", None))

        def move(
            target: Status, at: datetime, on: date, reason: str = "", note: str = "", by: int = lw
        ) -> None:
            nonlocal status
            code = None
            if target is Status.ASSESSED and status in (Status.RECEIVED, Status.CONTACTING):
                code = SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING
            elif target is Status.DECLINED:
                code = SNOMED_SOCIAL_PRESCRIBING_DECLINED
            steps.append((status, target, at, on, by, reason, note, code))
            status = target

        first_contact: datetime | None = None
        for day, outcome in ref.contacts:
            if day > today:
                break
            at = _at(day, rng)
            first_contact = first_contact or at
            w.add(
                ContactAttempt.__table__,
                {
                    "referral_id": ref.id,
                    "id": w.next_id(ContactAttempt.__table__),
                    "at": at,
                    "method": ContactMethod.PHONE,
                    "outcome": outcome,
                    "note": "",
                    "actor_id": lw,
                },
            )
            if status is Status.RECEIVED:
                move(Status.CONTACTING, at, day, note=f"Phone: {outcome.label}")
        if ref.assessed and ref.assessed <= today:
            at = _at(ref.assessed, rng)
            w.add(
                Conversation.__table__,
                {
                    "id": w.next_id(Conversation.__table__),
                    "referral_id": ref.id,
                    "held_on": ref.assessed,
                    "what_matters": rng.choice(WHAT_MATTERS_ANY),
                    "agreed_next_steps": "Find a course that suits and enrol them.",
                    "preferred_art_forms": [a.value for a in PATHWAY_ART_FORMS[ref.pathway][:2]],
                    "actor_id": lw,
                    "at": at,
                },
            )
            move(Status.ASSESSED, at, ref.assessed, note="What matters conversation recorded")
        if ref.close and ref.close[1] <= today and (status is not Status.RECEIVED):
            closing, day = ref.close
            move(closing, _at(day, rng), day, reason=rng.choice(CLOSE_REASONS[closing]))
        if ref.course >= 0:
            status = self.course_history(ref, lw, move, lambda: status)

        risk = rng.random() < 0.03
        interests = [a.value for a in PATHWAY_ART_FORMS[ref.pathway][: rng.randint(0, 2)]]
        last = steps[-1]
        closed_on = last[3] if last[1] in CLOSED_STATUSES else None
        snomed = next((s[7] for s in reversed(steps) if s[7]), None)
        w.add(
            Referral.__table__,
            {
                "id": ref.id,
                "patient_id": ref.patient,
                "gp_practice_id": self.world.practices[ref.practice],
                "referred_by_id": referred_by,
                "assigned_to_id": lw,
                "referrer_type": referrer_type,
                "pathway": ref.pathway,
                "reason": rng.choice(SITUATIONS[ref.pathway]),
                "interests": interests,
                "consent": True,
                "risk_flag": risk,
                "risk_note": rng.choice(RISK_NOTES) if risk else "",
                "received_on": ref.received,
                "status": status,
                "status_changed_at": last[2],
                "first_contact_at": first_contact,
                "closed_on": closed_on,
                "snomed_code": snomed,
                "new_episode_reason": "",
                "created_at": received_at,
                "updated_at": last[2],
            },
        )
        for frm, to, at, on, by, reason, note, code in steps:
            w.add(
                Transition.__table__,
                {
                    "id": w.next_id(Transition.__table__),
                    "referral_id": ref.id,
                    "from_status": frm,
                    "to_status": to,
                    "at": at,
                    "effective_on": on,
                    "actor_id": by,
                    "reason": reason,
                    "note": note,
                    "snomed_code": code,
                },
            )

    def course_history(self, ref: _Referral, lw: int, move: Any, current: Any) -> Status:
        """Enrolment, registers, questionnaires and how the course ended for this person."""
        rng, w, today = self.rng, self.w, self.today
        course = self.plan[ref.course]
        member = course.members[ref.slot]
        if member.enrolled_on > today:
            return current()
        enrolled_at = _at(member.enrolled_on, rng)
        enrolment_id = w.next_id(Enrolment.__table__)
        enrolment: dict[str, Any] = {
            "id": enrolment_id,
            "course_id": course.id,
            "referral_id": ref.id,
            "status": EnrolmentStatus.ENROLLED,
            "created_at": enrolled_at,
            "waitlisted_at": None,
            "enrolled_at": enrolled_at,
            "completed_at": None,
            "withdrawn_at": None,
            "withdrawn_reason": "",
            "created_by_id": lw,
        }
        if member.waitlisted:
            enrolment.update(
                status=EnrolmentStatus.WAITLISTED, waitlisted_at=enrolled_at, enrolled_at=None
            )
            move(Status.WAITLISTED, enrolled_at, member.enrolled_on, note=course.title, by=lw)
            w.add(Enrolment.__table__, enrolment)
            return current()
        move(Status.ENROLLED, enrolled_at, member.enrolled_on, note=course.title, by=lw)

        delivered = course.delivered(today)
        first_session = self.first_session_id[ref.course]
        attended_count = 0
        last_attended: int | None = None
        baseline: Decimal | None = None
        for i in delivered:
            if i >= member.leave:
                break
            day = course.dates[i]
            came = rng.random() < member.reliability
            end = _session_end(day, course.start_time, course.duration)
            mood_before = mood_after = None
            if came:
                if rng.random() < 0.85:
                    mood_before = rng.randint(2, 8)
                    mood_after = min(10, mood_before + rng.choice((0, 1, 1, 2, 2, 3)))
                status = AttendanceStatus.ATTENDED
            else:
                status = (
                    AttendanceStatus.APOLOGIES if rng.random() < 0.6 else AttendanceStatus.NO_SHOW
                )
            w.add(
                Attendance.__table__,
                {
                    "id": w.next_id(Attendance.__table__),
                    "session_id": first_session + i,
                    "enrolment_id": enrolment_id,
                    "status": status,
                    "mood_before": mood_before,
                    "mood_after": mood_after,
                    "note": "",
                    "recorded_at": end,
                    "recorded_by_id": course.artist,
                },
            )
            if came:
                attended_count += 1
                if current() is Status.ENROLLED:
                    move(Status.STARTED, end, day, note="First attendance", by=course.artist)
                    if rng.random() < 0.9:
                        baseline = self.questionnaire(
                            enrolment_id,
                            Timepoint.BASELINE,
                            rng.gauss(19.5, 3.5),
                            day,
                            end,
                            course.artist,
                        )
                last_attended = i
        sessions = len(course.dates)

        def leave_course(day: date, why_started: Callable[[], str]) -> None:
            """Off the course before completing it: withdrawn once started, else never started."""
            at = _at(day, rng)
            if current() is Status.STARTED:
                reason = why_started()
                move(Status.WITHDRAWN, at, day, reason=reason)
            else:
                reason = rng.choice(CLOSE_REASONS[Status.DID_NOT_START])
                move(Status.DID_NOT_START, at, day, reason=reason)
            enrolment.update(
                status=EnrolmentStatus.WITHDRAWN, withdrawn_at=at, withdrawn_reason=reason
            )

        if member.leave < sessions:
            stopped_after = course.dates[member.leave - 1]
            day = stopped_after + timedelta(days=rng.randint(3, 8))
            if day <= today and course.dates[member.leave] <= today:
                leave_course(day, lambda: rng.choice(WITHDRAWN_FROM_COURSE))
        elif course.finished_by < today:
            last_day = course.finished_by
            end_at = _session_end(last_day, course.start_time, course.duration)
            if rules.completes(attended_count, len(delivered)) and current() is Status.STARTED:
                move(
                    Status.COMPLETED,
                    end_at,
                    last_day,
                    note=f"Completed {course.title}",
                    by=course.artist,
                )
                enrolment.update(status=EnrolmentStatus.COMPLETED, completed_at=end_at)
                if baseline is not None and last_attended is not None and rng.random() < 0.9:
                    day = course.dates[last_attended]
                    self.questionnaire(
                        enrolment_id,
                        Timepoint.END,
                        float(baseline) + rng.gauss(2.0, 3.0),
                        day,
                        _session_end(day, course.start_time, course.duration),
                        course.artist,
                    )
            else:
                day = add_working_days(last_day, rng.randint(1, 5))
                if day <= today:
                    leave_course(
                        day,
                        lambda: (
                            f"Came to {attended_count} of {len(delivered)} sessions; "
                            "not enough to complete the course"
                        ),
                    )
        w.add(Enrolment.__table__, enrolment)
        return current()

    def questionnaire(
        self,
        enrolment_id: int,
        timepoint: Timepoint,
        metric: float,
        day: date,
        at: datetime,
        by: int,
    ) -> Decimal:
        rng = self.rng
        raw_target = max(7, min(35, round(metric)))
        items = [1] * 7
        for _ in range(raw_target - 7):
            candidates = [i for i in range(7) if items[i] < 5]
            items[rng.choice(candidates)] += 1
        key = tuple(items)
        if key not in self.scores:
            result = score(Instrument.SWEMWBS, items)
            self.scores[key] = (result.raw, result.metric)
        raw, value = self.scores[key]
        self.w.add(
            WellbeingAssessment.__table__,
            {
                "id": self.w.next_id(WellbeingAssessment.__table__),
                "enrolment_id": enrolment_id,
                "instrument": Instrument.SWEMWBS,
                "timepoint": timepoint,
                "items": items,
                "raw_score": raw,
                "metric_score": value,
                "recorded_on": day,
                "recorded_by_id": by,
                "created_at": at,
            },
        )
        return value


def _reset_sequences() -> None:
    """PostgreSQL hands out ids from sequences, which explicit ids do not move on."""
    if db.engine.dialect.name != "postgresql":
        return
    for table in db.metadata.sorted_tables:
        if "id" not in table.c or not table.c.id.primary_key:
            continue
        # setval is strict: a table whose id has no sequence gives NULL, not an error.
        sequence = func.pg_get_serial_sequence(f'"{table.name}"', "id")
        following = select(func.coalesce(func.max(table.c.id), 0) + 1).scalar_subquery()
        db.session.execute(select(func.setval(sequence, following, False)))


class DatabaseNotEmpty(RuntimeError):
    """The generated scheme needs a migrated database with no organisations or users."""


def database_is_empty() -> bool:
    return (
        db.session.scalar(select(Organisation.id).limit(1)) is None
        and db.session.scalar(select(User.id).limit(1)) is None
    )


class ScaleArgumentError(ValueError):
    """The scheme asked for cannot be generated; said before anything is written."""


MAX_REFERRALS = MAX_GENERATED_PEOPLE  # every referral may be a new person


def check_arguments(referrals: int, attendances: int) -> None:
    """Refuse a scheme that cannot be generated, before anything is planned or written."""
    if not 1 <= referrals <= MAX_REFERRALS:
        raise ScaleArgumentError(f"referrals must be between 1 and {MAX_REFERRALS:,}")
    if attendances < 0:
        raise ScaleArgumentError("attendances must be 0 or more")
    if attendances > referrals * MAX_SESSIONS:
        raise ScaleArgumentError(
            f"{referrals:,} referrals can have at most {referrals * MAX_SESSIONS:,} attendance "
            f"records ({MAX_SESSIONS} sessions each); ask for fewer attendances or more referrals"
        )


Progress = Callable[[str], None]


def seed_scale(
    referrals: int,
    attendances: int,
    *,
    seed: int = 2026,
    today: date | None = None,
    progress: Progress | None = None,
) -> ScaleReport:
    """Generate the scheme described above into an empty migrated database, committing each
    batch; `progress` (say `click.echo`) hears about each stage and batch."""
    check_arguments(referrals, attendances)
    if not database_is_empty():
        raise DatabaseNotEmpty("the database already holds data; use an empty one")
    began = perf_counter()
    today = today or clock.today()

    def report(message: str) -> None:
        if progress is not None:
            progress(f"[{perf_counter() - began:7.1f} s] {message}")

    # Aim the share of referrals reaching a course at the attendance wanted: plan a sample of
    # the referrals (all of them in a small scheme) and adjust; `_tune` makes the count exact.
    share = 0.9
    sample = min(referrals, PLANNING_SAMPLE)
    wanted_rows = attendances * sample / referrals
    stub = _stub_world()
    for attempt in range(3):
        planner = _Planner(sample, today, seed, share)
        refs = planner.referrals()
        plan = planner.courses(refs, stub)
        rows = sum(_rows(c, m, today) for c in plan for m in c.members)
        if rows == 0:
            break
        wanted = min(0.97, max(0.05, share * wanted_rows / rows))
        if abs(wanted - share) < 0.005 or attempt == 2:
            break
        share = wanted
    if sample < referrals:
        del refs, plan  # the sample's plan, before the whole one is made
        report(f"Planning {referrals:,} referrals ({share:.0%} reach a course) ...")
        planner = _Planner(referrals, today, seed, share)
        refs = planner.referrals()
        plan = planner.courses(refs, stub)

    world = _make_world(today, planner.start, hash_password(DEMO_PASSWORD))
    if world.providers != stub.providers:
        raise RuntimeError("the planned provider and artist ids differ from those written")
    made = _tune(plan, attendances, today)
    report(f"Planned {len(plan):,} courses and {made:,} attendance records.")
    counts = {
        "organisation": world.organisations,
        "user_account": world.users,
        "contract": len(world.contracts),
        "venue": VENUES,
    }
    counts |= _write_courses(plan, world, today)
    db.session.commit()
    report(f"Wrote {counts['course']:,} courses and {counts['course_session']:,} sessions.")
    step = max(CHUNK_ROWS, referrals // 20)
    with _bulk_load(_Writer.ORDER) as connection:
        writer = _Writer(connection)
        emitter = _Emitter(world, plan, today, seed, writer)
        for index, ref in enumerate(refs):
            emitter.referral(ref)
            writer.maybe_flush()
            if progress is not None and (index + 1) % step == 0:
                report(
                    f"{index + 1:,} of {referrals:,} referrals, "
                    f"{writer.counts[Attendance.__tablename__]:,} attendance records"
                )
        writer.flush()
        # The plan is done with: let it go before the indexes are built, the load's peak.
        del emitter, refs, plan
        gc.collect()
        report("Building the indexes ...")
    counts |= writer.counts
    _reset_sequences()
    db.session.commit()
    report("Done.")
    return ScaleReport(
        counts=counts,
        seconds=perf_counter() - began,
        sign_ins={role.value: email for role, email in SIGN_INS.items()},
    )


def _stub_world() -> _World:
    """Provider, artist and venue positions for planning, before any row exists.

    Ids are given in the order `_make_world` gives them, so the plan's ids are the real ones.
    """
    organisations = len(COMMISSIONERS) + PRACTICES + SERVICES
    first_artist = 1 + 2 * len(COMMISSIONERS) + PRACTICES + SERVICES * LINK_WORKERS_PER_SERVICE + 1
    providers = []
    for p in range(PROVIDERS):
        art = PROVIDER_KINDS[p % len(PROVIDER_KINDS)][0]
        name = f"{TOWNS[(p * 7) % len(TOWNS)]} {PROVIDER_KINDS[p % len(PROVIDER_KINDS)][1]}"
        name += f" {p + 1:02d}"
        artists = [first_artist + p * ARTISTS_PER_PROVIDER + a for a in range(ARTISTS_PER_PROVIDER)]
        providers.append(
            (
                organisations + p + 1,
                art,
                name,
                artists,
                [p % VENUES + 1, (p + PROVIDERS) % VENUES + 1],
            )
        )
    return _World([], [], [], providers, [], [], 0, 0)


def scale_bench_targets(today: date | None = None) -> BenchTargets:
    """The accounts and records a benchmark of a generated scheme should use."""
    today = today or clock.today()
    users = {
        role: db.session.scalar(select(User).where(User.email == email))
        for role, email in SIGN_INS.items()
    }
    missing = [role.value for role, user in users.items() if user is None]
    if missing:
        raise LookupError(f"no generated accounts for {', '.join(missing)}; run `flask seed scale`")
    artist, commissioner = users[Role.ARTIST], users[Role.COMMISSIONER]
    link_worker = users[Role.LINK_WORKER]
    assert artist is not None and commissioner is not None and link_worker is not None
    enrolled = (
        select(func.count())
        .where(
            Enrolment.course_id == CourseSession.course_id,
            Enrolment.status.in_((EnrolmentStatus.ENROLLED, EnrolmentStatus.COMPLETED)),
        )
        .correlate(CourseSession)
        .scalar_subquery()
    )
    session_id, course_id, size = db.session.execute(
        select(CourseSession.id, CourseSession.course_id, enrolled)
        .join(course_artist, course_artist.c.course_id == CourseSession.course_id)
        .where(course_artist.c.user_id == artist.id, CourseSession.date == today)
        .order_by(enrolled.desc(), CourseSession.id)
        .limit(1)
    ).one()
    # The course's contract: its commissioner is the generated commissioner's organisation.
    contract_id = db.session.scalar(select(Course.contract_id).where(Course.id == course_id))
    referral_id = db.session.scalar(
        select(Referral.id)
        .where(Referral.assigned_to_id == link_worker.id)
        # One still open on a course, with a long history, where there is one.
        .order_by(
            case(
                (Referral.status == Status.STARTED, 0),
                (Referral.status.in_(OPEN_STATUSES), 1),
                else_=2,
            ),
            Referral.id,
        )
        .limit(1)
    )
    assert contract_id is not None and referral_id is not None
    ids = {role: user.id for role, user in users.items() if user is not None}
    return BenchTargets(
        link_worker_id=ids[Role.LINK_WORKER],
        gp_id=ids[Role.REFERRER],
        artist_id=ids[Role.ARTIST],
        commissioner_id=ids[Role.COMMISSIONER],
        admin_id=ids[Role.ADMIN],
        course_id=course_id,
        session_id=session_id,
        register_size=size,
        contract_id=contract_id,
        referral_id=referral_id,
        emails={role.value: email for role, email in SIGN_INS.items()},
    )
