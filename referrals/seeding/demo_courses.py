"""The demo scheme's courses: two contracts, venues, twelve courses run term after term, and the
people on them, with registers, moods and wellbeing questionnaires.

`plan_demo_scheme` is pure and deterministic for a seed. It takes the referrals' intake from
`referrals.seeding.demo_referrals`, lays out each course's runs around `today`, then plays the
thirteen months forward one event at a time (enrolments, waiting lists, registers, completions,
withdrawals) by the rules the course services apply (`referrals.courses.rules`, the functions the
services call), so it knows where every referral ends up.
Shortly before `today` (`place_freed_at`) someone gives up their place on a full course, and
the first person waiting is offered it and has not answered yet. `apply_demo_scheme` replays
the plan in time order through the services, queueing no email or text message for what is
history.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, insert, select, update

from referrals.auth.models import Organisation, Role, User
from referrals.courses import rules
from referrals.courses.models import (
    Attendance,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
)
from referrals.courses.schedule import Frequency, Schedule, expand
from referrals.courses.services import (
    ContractFields,
    CourseFields,
    RegisterEntry,
    VenueFields,
    accept_offer,
    cancel_session,
    create_course,
    create_venue,
    enrol,
    record_wellbeing,
    save_contract,
    save_register,
    withdraw,
)
from referrals.dates import MONTH_NAMES
from referrals.extensions import db
from referrals.intake.lifecycle import Status
from referrals.intake.models import Referral, ReferralTransition
from referrals.intake.validation import age_on
from referrals.notifications.models import Notification, NotificationRead
from referrals.notifications.outbound import loading_history
from referrals.outcomes.scoring import Instrument, Timepoint
from referrals.outcomes.timepoints import CourseDays, timepoint_problem
from referrals.seeding.demo_referrals import (
    CLOSE_REASONS,
    LINK_WORKER,
    LINK_WORKER_2,
    LONDON,
    WITHDRAWN_FROM_COURSE,
    WITHDRAWN_FROM_WAITING_LIST,
    Accounts,
    DraftReferral,
    PlannedAssign,
    PlannedContact,
    PlannedConversation,
    PlannedEnrol,
    PlannedMove,
    PlannedReferral,
    PlannedStep,
    PlannedWithdrawal,
    apply_intake_step,
    create_planned_referral,
    draft_demo_referrals,
    history_start,
    last_planned_day,
)
from referrals.vocab import ArtForm, Pathway
from referrals.workdays import add_working_days, is_working_day

ICB = "NHS Severnvale Integrated Care Board"
PUBLIC_HEALTH = "Severnshire County Council Public Health"
ADMIN = "admin@demo.test"
LEAD_ARTISTS = {
    "Cathedral Voices CIC": "artist@demo.test",
    "Riverside Arts": "artist2@demo.test",
    "Moving Minds Dance": "artist3@demo.test",
    "Severnvale Museum": "artist4@demo.test",
}
UNREAD_DAYS = 14  # messages older than this are marked read in the demo inboxes


# --- The catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoVenue:
    name: str
    address: str
    postcode: str
    accessibility: str


VENUES: dict[str, DemoVenue] = {
    "st_aldates": DemoVenue(
        "St Aldate's Church Hall",
        "Westgate Street, Severnvale",
        "GL1 2PE",
        "Step-free entrance from the car park; accessible toilet; hearing loop; chairs with "
        "arms. Five minutes' walk from Severnvale bus station.",
    ),
    "kingsmead": DemoVenue(
        "Kingsmead Community Centre",
        "Oxstalls Lane, Kingsmead, Severnvale",
        "GL2 9HW",
        "All on the ground floor; accessible toilet and Changing Places room; free parking with "
        "four blue-badge bays; on the 10 and 11 bus routes.",
    ),
    "riverside": DemoVenue(
        "Riverside Arts Studio",
        "The Old Mill, Quay Street, Severnvale",
        "GL1 2LG",
        "Ground-floor studio with level access and an accessible toilet; large-print handouts "
        "on request. No parking on site: pay-and-display 100 metres away.",
    ),
    "spa_library": DemoVenue(
        "Kingsbridge Spa Library, Community Room",
        "Clarence Street, Kingsbridge Spa",
        "GL50 3JT",
        "Lift to the first-floor community room; accessible toilet; hearing loop; quiet room "
        "available. Town-centre bus stops outside.",
    ),
    "spa_rooms": DemoVenue(
        "The Spa Rooms",
        "Imperial Walk, Kingsbridge Spa",
        "GL50 1QA",
        "Step-free access through the garden entrance; accessible toilet; hearing loop; café "
        "open until 7pm.",
    ),
    "brunswick_mills": DemoVenue(
        "Brunswick Mills Dance Studio",
        "Unit 4, Brunswick Mills, London Road, Stroudwater",
        "GL5 2BP",
        "Sprung floor at ground level; sturdy chairs for seated work; accessible toilet; "
        "parking by the door, including two blue-badge bays.",
    ),
    "museum": DemoVenue(
        "Severnvale Museum, Learning Room",
        "Brunswick Road, Severnvale",
        "GL1 1HP",
        "Ground-floor learning room; wheelchairs to borrow; accessible toilet; dementia-friendly "
        "staff; quiet room; hearing loop at reception.",
    ),
    "deanbury_hall": DemoVenue(
        "Deanbury Miners' Welfare Hall",
        "High Street, Deanbury",
        "GL16 8HB",
        "Level access and an accessible toilet; free parking; community transport from the "
        "surrounding villages can be booked through the link worker.",
    ),
}


@dataclass(frozen=True)
class DemoCourse:
    """A course the scheme offers; it runs as a series of terms (`PlannedRun`)."""

    key: str
    title: str
    provider: str
    contract: str
    venue: str
    art_form: ArtForm
    # The art forms of people it suits, and the pathways it is for.
    art_forms: tuple[ArtForm, ...]
    pathways: tuple[Pathway, ...]
    weekday: int  # Monday is 0
    start: time
    minutes: int
    sessions: int
    capacity: int
    cost_pence: int
    description: str
    min_age: int | None = 18
    max_age: int | None = None
    gap_weeks: int = 3  # from one term's last session to the next term's first
    # The current term started this many weeks before today (negative: starts in that many).
    offset_weeks: int = 0
    launch_weeks: int = 3  # weeks after the first referrals that its first term may start
    wemwbs: bool = False  # the provider also uses the 14-item scale

    def accepts(self, pathway: Pathway, age: int) -> bool:
        return pathway in self.pathways and rules.in_age_range(age, self.min_age, self.max_age)


_P = Pathway
COURSES: dict[str, DemoCourse] = {
    c.key: c
    for c in (
        DemoCourse(
            "breathing",
            "Singing for Better Breathing",
            "Cathedral Voices CIC",
            "icb",
            "st_aldates",
            ArtForm.SINGING,
            (ArtForm.SINGING, ArtForm.MUSIC),
            (_P.COPD_ASTHMA, _P.OTHER, _P.SOCIAL_ISOLATION),
            1,
            time(10),
            90,
            10,
            12,
            3000,
            "Breathing exercises, posture and songs chosen to help with breathlessness. For "
            "people living with COPD, asthma or other lung conditions; no singing experience "
            "needed.",
            gap_weeks=3,
            offset_weeks=3,
            launch_weeks=6,
        ),
        DemoCourse(
            "memory_choir",
            "Memory Lane Singers",
            "Cathedral Voices CIC",
            "public_health",
            "kingsmead",
            ArtForm.SINGING,
            (ArtForm.SINGING, ArtForm.MUSIC),
            (_P.DEMENTIA,),
            3,
            time(14),
            90,
            10,
            12,
            3200,
            "A choir for people living with dementia and the people who care for them: songs "
            "from the 1950s to the 1970s, tea and conversation.",
            min_age=None,
            gap_weeks=5,
            offset_weeks=5,
            launch_weeks=8,
        ),
        DemoCourse(
            "choir",
            "Community Wellbeing Choir",
            "Cathedral Voices CIC",
            "icb",
            "spa_rooms",
            ArtForm.SINGING,
            (ArtForm.SINGING, ArtForm.MUSIC, ArtForm.DRAMA),
            (_P.MENTAL_HEALTH, _P.SOCIAL_ISOLATION, _P.CANCER, _P.OTHER, _P.DIABETES),
            2,
            time(18, 30),
            90,
            10,
            15,
            2500,
            "An early-evening choir for adults who would like to sing with others, whatever "
            "their voice. Learning by ear; no reading music.",
            gap_weeks=4,
            offset_weeks=8,
            launch_weeks=7,
        ),
        DemoCourse(
            "painting",
            "Painting for Wellbeing",
            "Riverside Arts",
            "icb",
            "riverside",
            ArtForm.VISUAL_ART,
            (ArtForm.VISUAL_ART,),
            (
                _P.MENTAL_HEALTH,
                _P.CHRONIC_PAIN,
                _P.CANCER,
                _P.SOCIAL_ISOLATION,
                _P.DIABETES,
                _P.OTHER,
            ),
            2,
            time(10),
            120,
            8,
            8,
            3500,
            "Eight weeks of watercolour and acrylics in a small, friendly group, with a "
            "professional artist. All materials provided.",
            gap_weeks=2,
            offset_weeks=-1,
            launch_weeks=6,
            wemwbs=True,
        ),
        DemoCourse(
            "textiles",
            "Textiles and Conversation",
            "Riverside Arts",
            "public_health",
            "deanbury_hall",
            ArtForm.CRAFTS,
            (ArtForm.CRAFTS, ArtForm.VISUAL_ART),
            (
                _P.SOCIAL_ISOLATION,
                _P.CHRONIC_PAIN,
                _P.MENTAL_HEALTH,
                _P.DIABETES,
                _P.COPD_ASTHMA,
            ),
            4,
            time(10),
            120,
            8,
            8,
            3000,
            "Stitching, knitting and weaving over a cup of tea. Bring a project or start one "
            "with us; materials provided.",
            gap_weeks=4,
            offset_weeks=6,
            launch_weeks=9,
            wemwbs=True,
        ),
        DemoCourse(
            "young",
            "Young Creatives",
            "Riverside Arts",
            "icb",
            "riverside",
            ArtForm.MUSIC,
            (ArtForm.MUSIC, ArtForm.DRAMA, ArtForm.VISUAL_ART, ArtForm.WRITING),
            (_P.YOUNG_PEOPLES_MENTAL_HEALTH,),
            3,
            time(16),
            120,
            8,
            8,
            3500,
            "Music, spoken word and art for 16 to 25 year olds, led by young artists. A small "
            "group that goes at your pace.",
            min_age=16,
            max_age=25,
            gap_weeks=8,
            offset_weeks=2,
            launch_weeks=12,
            wemwbs=True,
        ),
        DemoCourse(
            "writing",
            "Creative Writing Circle",
            "Riverside Arts",
            "icb",
            "spa_library",
            ArtForm.WRITING,
            (ArtForm.WRITING, ArtForm.DRAMA),
            (
                _P.MENTAL_HEALTH,
                _P.CANCER,
                _P.CHRONIC_PAIN,
                _P.YOUNG_PEOPLES_MENTAL_HEALTH,
            ),
            0,
            time(13, 30),
            120,
            8,
            8,
            3000,
            "Poems, memoir and short stories in a supportive group with a published writer. "
            "Nobody has to read their work aloud.",
            gap_weeks=6,
            offset_weeks=-1,
            launch_weeks=10,
            wemwbs=True,
        ),
        DemoCourse(
            "parkinsons",
            "Dance for Parkinson's",
            "Moving Minds Dance",
            "public_health",
            "brunswick_mills",
            ArtForm.DANCE,
            (ArtForm.DANCE, ArtForm.MUSIC),
            (_P.OTHER,),
            0,
            time(10, 30),
            75,
            10,
            10,
            3200,
            "Dance for people with Parkinson's, MS, the effects of a stroke or other neurological "
            "conditions, standing or seated, with live music. Partners and carers welcome.",
            min_age=40,
            gap_weeks=8,
            offset_weeks=4,
            launch_weeks=14,
        ),
        DemoCourse(
            "seated",
            "Chair-based Movement",
            "Moving Minds Dance",
            "public_health",
            "kingsmead",
            ArtForm.DANCE,
            (ArtForm.DANCE,),
            (_P.CHRONIC_PAIN, _P.COPD_ASTHMA, _P.DIABETES, _P.SOCIAL_ISOLATION),
            3,
            time(10),
            60,
            8,
            12,
            2800,
            "Gentle movement to music, all done sitting down, for strength, balance and "
            "confidence. For people aged 50 and over.",
            min_age=50,
            gap_weeks=8,
            offset_weeks=7,
            launch_weeks=10,
        ),
        DemoCourse(
            "museum",
            "Museum Memories",
            "Severnvale Museum",
            "public_health",
            "museum",
            ArtForm.HERITAGE,
            (ArtForm.HERITAGE, ArtForm.MUSIC, ArtForm.SINGING),
            (_P.DEMENTIA,),
            2,
            time(14),
            90,
            8,
            6,
            4000,
            "Handling objects from the museum's collection to spark memories and conversation, "
            "for people living with dementia and their carers.",
            min_age=None,
            gap_weeks=8,
            offset_weeks=-3,
            launch_weeks=12,
        ),
        DemoCourse(
            "photography",
            "Photography Walks",
            "Severnvale Museum",
            "icb",
            "museum",
            ArtForm.PHOTOGRAPHY,
            (ArtForm.PHOTOGRAPHY, ArtForm.VISUAL_ART),
            (
                _P.MENTAL_HEALTH,
                _P.YOUNG_PEOPLES_MENTAL_HEALTH,
                _P.DIABETES,
                _P.SOCIAL_ISOLATION,
            ),
            4,
            time(13),
            120,
            8,
            8,
            3000,
            "Gentle walks around the city with a photographer, starting and ending at the "
            "museum. Bring a phone or borrow one of our cameras.",
            min_age=16,
            gap_weeks=10,
            offset_weeks=1,
            launch_weeks=14,
        ),
        DemoCourse(
            "objects",
            "Objects and Stories",
            "Severnvale Museum",
            "public_health",
            "spa_library",
            ArtForm.HERITAGE,
            (ArtForm.HERITAGE, ArtForm.WRITING),
            (_P.MENTAL_HEALTH, _P.SOCIAL_ISOLATION, _P.CANCER, _P.OTHER),
            1,
            time(10, 30),
            120,
            8,
            8,
            3500,
            "Museum objects brought to the library as starting points for talk, drawing and "
            "writing about local history and our own lives.",
            gap_weeks=6,
            offset_weeks=5,
            launch_weeks=14,
        ),
    )
}


@dataclass(frozen=True)
class PlannedContract:
    key: str
    commissioner: str
    name: str
    start: date
    end: date
    targets: dict[str, dict[str, dict[str, float]]]


def _levels(minimum: float, expected: float, stretch: float) -> dict[str, float]:
    return {"minimum": minimum, "expected": expected, "stretch": stretch}


def plan_contracts(today: date) -> tuple[PlannedContract, ...]:
    """The ICB's arts on prescription contract and public health's programme for older and
    isolated people, both started before the first referrals, with targets for the month
    and the year to date (KPI spec v2)."""
    icb_start = history_start(today).replace(day=1)
    icb_end = icb_start + relativedelta(months=26) - timedelta(days=1)
    ph_start = icb_start + relativedelta(months=1)
    ph_end = ph_start + relativedelta(months=22) - timedelta(days=1)
    return (
        PlannedContract(
            "icb",
            ICB,
            f"Severnvale Arts on Prescription {icb_start.year}–{icb_end.year % 100:02d}",
            icb_start,
            icb_end,
            {
                "B1": {"month": _levels(30, 35, 45)},
                "B2": {"month": _levels(8, 12, 18)},
                "B4": {"month": _levels(10, 14, 18)},
                "B6": {"month": _levels(70, 75, 85), "year_to_date": _levels(70, 75, 85)},
                "A2": {"month": _levels(15, 10, 0)},
                "C0": {"year_to_date": _levels(70, 80, 90)},
                "C4": {"year_to_date": _levels(1, 2, 3)},
                "C5": {"year_to_date": _levels(30, 40, 60)},
            },
        ),
        PlannedContract(
            "public_health",
            PUBLIC_HEALTH,
            f"Creative Health and Connection {ph_start.year}–{ph_end.year % 100:02d}",
            ph_start,
            ph_end,
            {
                # Monthly counts at this contract are small: people are targeted over the
                # year, where a count of 1 to 7 would otherwise never be published.
                "B1": {"month": _levels(10, 15, 25)},
                "B2": {"year_to_date": _levels(30, 45, 60)},
                "B4": {"month": _levels(6, 10, 14)},
                "B6": {"month": _levels(70, 75, 85), "year_to_date": _levels(70, 75, 85)},
                "C0": {"year_to_date": _levels(70, 80, 90)},
                "C5": {"year_to_date": _levels(25, 35, 50)},
            },
        ),
    )


# --- Course runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One term of a course: its own Course row, e.g. "Painting for Wellbeing (April 2025)"."""

    key: str
    course: str
    title: str
    schedule: Schedule
    dates: tuple[date, ...]

    @property
    def first(self) -> date:
        return self.dates[0]

    @property
    def last(self) -> date:
        return self.dates[-1]


def _christmas_break(day: date) -> tuple[date, date] | None:
    if day.month == 12 and day.day >= 20:
        return date(day.year, 12, 20), date(day.year + 1, 1, 3)
    if day.month == 1 and day.day <= 3:
        return date(day.year - 1, 12, 20), date(day.year, 1, 3)
    return None


def _make_run(course: DemoCourse, start: date) -> PlannedRun:
    """A term starting on `start`, with a break over Christmas when it would meet then."""
    schedule = Schedule(start, course.start, course.minutes, Frequency.WEEKLY, course.sessions)
    dates = [s.date for s in expand(schedule)]
    breaks = {b for d in dates if (b := _christmas_break(d)) is not None}
    if breaks:
        schedule = replace(schedule, term_breaks=tuple(sorted(breaks)))
        dates = [s.date for s in expand(schedule)]
    first = dates[0]
    return PlannedRun(
        key=f"{course.key}-{first.isoformat()}",
        course=course.key,
        title=f"{course.title} ({MONTH_NAMES[first.month - 1]} {first.year})",
        schedule=schedule,
        dates=tuple(dates),
    )


def _on_weekday(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def plan_runs(today: date) -> tuple[PlannedRun, ...]:
    """Each course's terms from its launch to the one after the current term, oldest first."""
    launch = history_start(today)
    runs: list[PlannedRun] = []
    for course in COURSES.values():
        anchor = _on_weekday(today - timedelta(weeks=course.offset_weeks), course.weekday)
        current = _make_run(course, anchor)
        chain = [current]
        gap = timedelta(weeks=course.gap_weeks)
        while True:
            following = chain[0]
            start = following.first - timedelta(weeks=course.sessions - 1) - gap
            run = _make_run(course, start)
            while run.last + gap > following.first:
                start -= timedelta(weeks=1)
                run = _make_run(course, start)
            if run.first < launch + timedelta(weeks=course.launch_weeks):
                break
            chain.insert(0, run)
        if current.first <= today:
            chain.append(_make_run(course, current.last + gap))
        runs.extend(chain)
    return tuple(sorted(runs, key=lambda r: (r.first, r.key)))


# --- Course events in the plan -----------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCancellation:
    at: datetime
    seq: int
    by: str
    run: str
    session: int  # the session's sequence number in its run
    reason: str


@dataclass(frozen=True)
class PlannedAttendance:
    referral: int  # index into the plan's referrals
    status: AttendanceStatus
    mood_before: int | None = None
    mood_after: int | None = None
    note: str = ""


@dataclass(frozen=True)
class PlannedRegister:
    at: datetime
    seq: int
    by: str
    run: str
    session: int
    entries: tuple[PlannedAttendance, ...]


@dataclass(frozen=True)
class PlannedQuestionnaire:
    at: datetime
    seq: int
    by: str
    referral: int
    run: str
    instrument: Instrument
    timepoint: Timepoint
    items: tuple[int, ...]
    recorded_on: date


CourseEvent = PlannedCancellation | PlannedRegister | PlannedQuestionnaire


@dataclass(frozen=True)
class PlannedOffer:
    """A place on `run` offered from its waiting list to `referral` (an index into the plan's
    referrals) and not yet answered: held for them until the end of `reply_by`, then passed to
    `waiting`, the people behind them, in turn."""

    at: datetime
    referral: int
    run: str
    reply_by: date
    waiting: tuple[int, ...]


@dataclass(frozen=True)
class DemoPlan:
    today: date
    referrals: tuple[PlannedReferral, ...]
    contracts: tuple[PlannedContract, ...]
    runs: tuple[PlannedRun, ...]
    events: tuple[CourseEvent, ...]
    open_offers: tuple[PlannedOffer, ...] = ()

    def stream(self) -> Iterator[tuple[int | None, PlannedReferral | PlannedStep | CourseEvent]]:
        """Everything in the order it happened: (referral index or None, what happened)."""
        items: list[tuple[datetime, int, int | None, Any]] = []
        for index, referral in enumerate(self.referrals):
            items.append((referral.received_at, -1, index, referral))
            items.extend((step.at, getattr(step, "seq", 0), index, step) for step in referral.steps)
        items.extend((event.at, event.seq, None, event) for event in self.events)
        items.sort(key=lambda item: (item[0], item[1]))
        for _at, _seq, whose, item in items:
            yield whose, item


# --- Playing the year forward ------------------------------------------------------------------

APOLOGY_NOTES = (
    "Hospital appointment",
    "Unwell this week",
    "Carer could not bring them",
    "Family visiting",
    "Transport fell through",
    "Rang to say they were too tired",
)
SESSION_CANCELLED = (
    "Venue closed: the heating failed",
    "Snow and ice: the venue closed for safety",
    "Artist unwell and no cover available",
    "The hall was needed as a polling station",
    "Venue closed after a power cut",
    "Burst pipe: the venue closed for repairs",
    "Artist unwell and no cover available",
)
TOO_FEW_BOOKINGS = "Too few bookings to run this term"
CALLED_OFF = "Nobody is left on the course; the rest of the term is cancelled"
RUN_CANCELLED = "The community room flooded and is closed for repairs; the course cannot run"
WAITING_TOO_LONG = "Did not want to wait for the next course"
MOVED_ON = "No place came up; moved to the next course"
TOOK_OTHER_COURSE = "No place came up; took a place on another course instead"
DECLINED_PLACE = "Decided not to take up the place"
SINGLE_CANCELLATIONS = 7


def place_freed_at(today: date) -> datetime:
    """When someone gives up the place that is still on offer at `today`: late on the last
    working day before it, or yesterday when that leaves the person offered it no time after
    today to answer (a Monday's demo: offers are held for `rules.OFFER_REPLY_DAYS` days)."""
    day = last_planned_day(today)
    if rules.offer_reply_by(day) <= today:
        day = today - timedelta(days=1)
    return datetime.combine(day, time(16, 30), tzinfo=LONDON)


def _moment(rng: random.Random, day: date, earliest: time, latest: time) -> datetime:
    low = earliest.hour * 60 + earliest.minute
    high = latest.hour * 60 + latest.minute
    minutes = rng.randint(low, high)
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=LONDON)


def _session_start(run: PlannedRun, sequence: int) -> datetime:
    return datetime.combine(run.dates[sequence - 1], run.schedule.start_time, tzinfo=LONDON)


def _session_end(run: PlannedRun, sequence: int) -> datetime:
    return _session_start(run, sequence) + timedelta(minutes=run.schedule.duration_minutes)


def _clip(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def _items(rng: random.Random, total: int, count: int) -> tuple[int, ...]:
    """`count` answers from 1 to 5 that add up to `total`, spread as real answers are."""
    total = max(count, min(5 * count, total))
    items = [total // count] * count
    for i in rng.sample(range(count), total % count):
        items[i] += 1
    for _ in range(count):  # some answers higher, some lower
        a, b = rng.sample(range(count), 2)
        if items[a] < 5 and items[b] > 1:
            items[a] += 1
            items[b] -= 1
    return tuple(items)


def _weighted(rng: random.Random, options: list[tuple[Any, float]]) -> Any:
    values, weights = zip(*options, strict=True)
    return rng.choices(values, weights=weights)[0]


@dataclass
class _Place:
    """A person's place, or waiting-list place, on one run."""

    index: int
    run: _Run
    status: EnrolmentStatus
    joined_after: int  # sessions the run had delivered when the place was taken
    number: int  # the order places were taken in, as the services number enrolments
    waitlisted_at: datetime | None = None
    enrolled_at: datetime | None = None  # when the place was taken, as `Enrolment.enrolled_at`
    attended: int = 0
    attended_on: list[date] = field(default_factory=list)
    missed_in_row: int = 0
    last_attended: int | None = None  # session sequence
    leaving: bool = False
    baseline: int | None = None  # SWEMWBS raw score
    baseline_wemwbs: int | None = None


@dataclass
class _Run:
    plan: PlannedRun
    course: DemoCourse
    places: list[_Place] = field(default_factory=list)
    delivered: int = 0
    cancelled: set[int] = field(default_factory=set)
    closed: bool = False  # cancelled outright
    group: int | None = None  # people on the register at its first session

    def with_status(self, status: EnrolmentStatus) -> list[_Place]:
        return [p for p in self.places if p.status is status]

    def waiting(self) -> list[_Place]:
        """The waiting list, in the order the services offer freed places."""
        return rules.in_waiting_order(self.with_status(EnrolmentStatus.WAITLISTED), _waiting_order)

    def register(self, session_day: date) -> list[_Place]:
        """Who the register of the session on `session_day` lists (`rules.on_register`)."""
        return [p for p in self.places if rules.on_register(p.status, p.enrolled_at, session_day)]

    def days(self, place: _Place) -> CourseDays:
        """The days that decide `place`'s questionnaire timepoints: the sessions not cancelled
        so far, and the ones the person came to."""
        sessions = [day for n, day in enumerate(self.plan.dates, 1) if n not in self.cancelled]
        return CourseDays(sessions=sessions, attended=place.attended_on)

    def takes(self, place: _Place, timepoint: Timepoint, on: date) -> bool:
        """Whether `place`'s questionnaire on `on` is at `timepoint` (`timepoint_problem`)."""
        return timepoint_problem(timepoint, on, self.days(place)) is None


def _waiting_order(place: _Place) -> tuple[datetime, int]:
    return rules.waiting_order(place.waitlisted_at, place.number)


@dataclass
class _Person:
    index: int
    draft: DraftReferral
    kind: str  # regular, dropout, no_show (never comes), decline (gives up the place)
    attendance: float
    stop_after: int
    mood: float
    change: int  # SWEMWBS raw change from baseline to end
    place: _Place | None = None
    must_attend: bool = False


@dataclass(frozen=True)
class _Match:
    index: int
    excluded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Session:
    run: str
    sequence: int


@dataclass(frozen=True)
class _Cancel:
    run: str
    sequences: tuple[int, ...]
    reason: str
    by: str


@dataclass(frozen=True)
class _Review:
    run: str


@dataclass(frozen=True)
class _Leave:
    index: int
    why: str  # no_show, decline, dropout, incomplete
    place: _Place


@dataclass(frozen=True)
class _FreePlace:
    """Someone gives up a place on a full course, and the place stays on offer."""


_Event = _Match | _Session | _Cancel | _Review | _Leave | _FreePlace


class _SchemeYear:
    """Plays the matched referrals through the course runs, event by event.

    Every course rule it needs comes from `referrals.courses.rules`, the pure functions the
    course services call: whether a place is free or the person waits (`enrolment_outcome`),
    who is offered a freed place (`offered_next`, in `waiting_order`) and until when
    (`offer_reply_by`), the age range, who is on each session's register (`on_register`),
    starting at the first attendance (`starts`), the course's end (`course_end`) and completion
    at 75% of delivered sessions, rounded up (`completes`), and where giving up a place leaves
    the referral (`referral_after_withdrawal`); and from `referrals.outcomes.timepoints`, the
    days each questionnaire is taken on (`timepoint_problem`). What is
    left here is the people's behaviour: which course they choose, whether they come, when they
    leave, and what the providers and link workers decide.

    The year is played in memory rather than through the services with the clock moved to each
    event, because the plan is played up to ten times (terms too thin to run are dropped and the
    year played again) and the tests read the plan to know what to expect; loading one plan
    through the services already takes most of `flask seed demo`'s time. `apply_demo_scheme`
    then replays the plan through the services and stops if they disagree with it.
    """

    def __init__(
        self,
        rng: random.Random,
        drafts: list[DraftReferral],
        runs: tuple[PlannedRun, ...],
        today: date,
    ) -> None:
        self.rng = rng
        self.drafts = drafts
        self.today = today
        self.last_day = last_planned_day(today)
        self.runs = {r.key: _Run(r, COURSES[r.course]) for r in runs}
        self.by_course: dict[str, list[_Run]] = {}
        for run in self.runs.values():
            self.by_course.setdefault(run.course.key, []).append(run)
        self.people: dict[int, _Person] = {}
        self.queue: list[tuple[datetime, int, _Event]] = []
        self.order = itertools.count()
        self.seq = itertools.count(1)
        self.events: list[CourseEvent] = []
        self.open_offers: list[PlannedOffer] = []

    # The event queue.

    def push(self, at: datetime, event: _Event) -> None:
        heapq.heappush(self.queue, (at, next(self.order), event))

    def play(self) -> list[CourseEvent]:
        for index, draft in enumerate(self.drafts):
            ready = draft.timeline.ready_at
            if ready is not None:
                self.push(ready, _Match(index))
        for run in self.runs.values():
            for sequence in range(1, len(run.plan.dates) + 1):
                self.push(_session_end(run.plan, sequence), _Session(run.plan.key, sequence))
        self._plan_cancellations()
        self.push(place_freed_at(self.today), _FreePlace())
        while self.queue:
            at, _, event = heapq.heappop(self.queue)
            if at.date() > self.last_day and not isinstance(event, _FreePlace):
                continue
            if isinstance(event, _Match):
                self._match(at, event)
            elif isinstance(event, _Session):
                self._session(at, self.runs[event.run], event.sequence)
            elif isinstance(event, _Cancel):
                self._cancel(at, event)
            elif isinstance(event, _Review):
                self._review(at, self.runs[event.run])
            elif isinstance(event, _FreePlace):
                self._free_a_place(at)
            else:
                self._leave(at, event)
        return self.events

    # Cancellations, decided up front: a few single sessions and one whole term.

    def _plan_cancellations(self) -> None:
        rng = self.rng
        objects = [r for r in self.by_course["objects"] if r.plan.last <= self.last_day]
        target = self.today - timedelta(days=180)
        lost = min(objects, key=lambda r: abs((r.plan.first - target).days), default=None)
        if lost is not None:
            day = add_working_days(lost.plan.first - timedelta(days=8), 1)
            self.push(
                _moment(rng, day, time(10), time(11)),
                _Cancel(
                    lost.plan.key,
                    tuple(range(1, len(lost.plan.dates) + 1)),
                    RUN_CANCELLED,
                    ADMIN,
                ),
            )
        past = [
            (run, sequence)
            for run in self.runs.values()
            if run is not lost
            for sequence in range(3, len(run.plan.dates))
            if run.plan.dates[sequence - 1] <= self.last_day
        ]
        for (run, sequence), reason in zip(
            rng.sample(past, min(SINGLE_CANCELLATIONS, len(past))), SESSION_CANCELLED, strict=False
        ):
            session_day = run.plan.dates[sequence - 1]
            if reason.startswith("Artist unwell"):
                at = _moment(rng, session_day, time(7, 30), time(8, 30))
            else:
                day = session_day - timedelta(days=rng.randint(1, 4))
                while not is_working_day(day):
                    day -= timedelta(days=1)
                at = _moment(rng, day, time(9), time(16, 30))
            artist = LEAD_ARTISTS[run.course.provider]
            self.push(at, _Cancel(run.plan.key, (sequence,), reason, artist))
        # One coming session, not at Cathedral Voices, cancelled in the last few days.
        coming = [
            (run, sequence)
            for run in self.runs.values()
            if run.course.provider != "Cathedral Voices CIC"
            for sequence in range(3, len(run.plan.dates))
            if self.today + timedelta(days=7) <= run.plan.dates[sequence - 1]
            and run.plan.dates[sequence - 1] <= self.today + timedelta(days=35)
        ]
        if coming:
            run, sequence = rng.choice(coming)
            self.push(
                _moment(rng, self.last_day, time(9), time(12)),
                _Cancel(
                    run.plan.key,
                    (sequence,),
                    "The venue is closed that day for a private booking",
                    LEAD_ARTISTS[run.course.provider],
                ),
            )

    # Emitting what happens.

    def _emit(self, event: CourseEvent) -> None:
        self.events.append(event)

    def _person(self, index: int) -> _Person:
        person = self.people.get(index)
        if person is None:
            rng = self.rng
            keep_open = self.drafts[index].keep_open
            kind = (
                "regular"
                if keep_open
                else _weighted(
                    rng,
                    [("regular", 0.79), ("dropout", 0.09), ("no_show", 0.08), ("decline", 0.04)],
                )
            )
            change = _weighted(
                rng,
                [
                    (round(rng.gauss(5.5, 2.2)), 0.70),
                    (round(rng.gauss(0.3, 1.2)), 0.22),
                    (round(rng.gauss(-5, 1.5)), 0.08),
                ],
            )
            person = _Person(
                index=index,
                draft=self.drafts[index],
                kind=kind,
                attendance=rng.uniform(0.75, 0.99),
                stop_after=rng.randint(1, 4),
                mood=rng.uniform(3.0, 6.0),
                change=change,
            )
            self.people[index] = person
        return person

    def _age(self, person: _Person, run: _Run, on: date) -> int:
        checked_on = rules.age_checked_on(run.plan.first, on)
        return age_on(person.draft.referral.person.date_of_birth, checked_on)

    def _next_run(self, person: _Person, course: DemoCourse, on: date) -> _Run | None:
        for run in self.by_course[course.key]:
            if run.plan.first > on and not run.closed:
                age = self._age(person, run, on)
                if course.accepts(person.draft.referral.pathway, age):
                    return run
                return None
        return None

    def _choose_run(self, person: _Person, on: date, excluded: frozenset[str]) -> _Run | None:
        """The person's first choice if a term starts within ten weeks, else the soonest of
        their first three choices. When that is full, some take a place on another course in an
        art form they asked for; the rest join the waiting list."""
        pathway = person.draft.referral.pathway
        liked: list[DemoCourse] = []
        for art_form in person.draft.timeline.art_forms:
            liked += [c for c in COURSES.values() if art_form in c.art_forms]
        suitable = liked + [c for c in COURSES.values() if pathway in c.pathways]
        runs: list[_Run] = []
        for course in dict.fromkeys(suitable):
            if course.key in excluded:
                continue
            run = self._next_run(person, course, on)
            if run is not None:
                runs.append(run)
        if not runs:
            return None
        choice = (
            runs[0]
            if runs[0].plan.first <= on + timedelta(weeks=10)
            else min(runs[:3], key=lambda r: r.plan.first)
        )
        if self._is_full(choice) and self.rng.random() < 0.25:
            soon = on + timedelta(weeks=6)
            free = [
                r
                for r in runs
                if r.course in liked and r.plan.first <= soon and not self._is_full(r)
            ]
            if free:
                return free[0]
        return choice

    @staticmethod
    def _places_held(run: _Run) -> int:
        return sum(rules.holds_place(p.status) for p in run.places)

    def _is_full(self, run: _Run) -> bool:
        return rules.is_full(run.course.capacity, self._places_held(run))

    def _place(self, person: _Person, run: _Run, at: datetime) -> None:
        """As `enrol`: a place while one is free, else the waiting list."""
        t = person.draft.timeline
        status, result = rules.enrolment_outcome(run.course.capacity, self._places_held(run))
        seq = next(self.seq)
        t.enrol(at, run.plan.key, result, seq)
        t.move_at(
            at,
            result,
            system=True,
            effect=True,
            by=t.link_worker,
            note=run.plan.title,
            course=run.plan.title,
            seq=seq,
        )
        waitlisted_at = at if status is EnrolmentStatus.WAITLISTED else None
        enrolled_at = at if status is EnrolmentStatus.ENROLLED else None
        place = _Place(person.index, run, status, run.delivered, seq, waitlisted_at, enrolled_at)
        run.places.append(place)
        person.place = place
        if person.draft.keep_open:
            person.must_attend = True
        if status is EnrolmentStatus.ENROLLED and person.kind == "decline":
            person.kind = "regular"  # if they come back later, they take it up
            first_day = add_working_days(at.date(), 2)
            last_day = run.plan.first - timedelta(days=2)
            if first_day <= last_day:
                span = (last_day - first_day).days
                day = first_day + timedelta(days=self.rng.randint(0, span))
                while not is_working_day(day) and day > first_day:
                    day -= timedelta(days=1)
                self.push(
                    _moment(self.rng, day, time(9, 30), time(16)),
                    _Leave(person.index, "decline", place),
                )

    def _withdraw(
        self, at: datetime, place: _Place, reason: str, by: str, *, offer_taken: bool = True
    ) -> None:
        """As `withdraw`: off the course, the referral back to be matched (or closed if they had
        started), and a freed place offered to the first person waiting, who takes it at once
        unless not `offer_taken`."""
        person = self.people[place.index]
        t = person.draft.timeline
        run = place.run
        seq = next(self.seq)
        t.withdraw(at, run.plan.key, reason, seq, offer_taken=offer_taken)
        after = rules.referral_after_withdrawal(t.status)
        if after is Status.ASSESSED:
            t.move_at(
                at,
                Status.ASSESSED,
                system=True,
                effect=True,
                by=by,
                note=f"Taken off {run.plan.title}: {reason}",
                course=run.plan.title,
                seq=seq,
            )
        elif after is not None:
            t.move_at(
                at,
                after,
                effect=True,
                by=by,
                reason=reason,
                course=run.plan.title,
                seq=seq,
            )
        held_place = rules.holds_place(place.status)
        place.status = EnrolmentStatus.WITHDRAWN
        if not held_place:
            return
        free = rules.places_free(run.course.capacity, self._places_held(run))
        waiting = run.with_status(EnrolmentStatus.WAITLISTED)
        for offered in rules.offered_next(waiting, free, _waiting_order):
            if not offer_taken:
                offered.status = EnrolmentStatus.OFFERED
                behind = run.waiting()
                reply_by = rules.offer_reply_by(at.date())
                self.open_offers.append(
                    PlannedOffer(
                        at, offered.index, run.plan.key, reply_by, tuple(p.index for p in behind)
                    )
                )
                continue
            offered.status = EnrolmentStatus.ENROLLED
            offered.enrolled_at = at
            offered.joined_after = run.delivered
            lucky = self.people[offered.index]
            lucky.must_attend = True
            lucky.draft.timeline.move_at(
                at,
                Status.ENROLLED,
                system=True,
                effect=True,
                by=by,
                note=f"Offered a place on {run.plan.title} from the waiting list",
                course=run.plan.title,
                seq=seq,
            )

    def _close(self, at: datetime, person: _Person, target: Status, reason: str) -> None:
        """The link worker closes the referral, then gives up its place on the course."""
        t = person.draft.timeline
        t.move_at(at, target, reason=reason, seq=next(self.seq))
        if person.place is not None and rules.is_active(person.place.status):
            self._withdraw(at, person.place, reason, t.link_worker)

    # Handling each event.

    def _match(self, at: datetime, event: _Match) -> None:
        person = self._person(event.index)
        run = self._choose_run(person, at.date(), event.excluded)
        if run is not None:
            self._place(person, run, at)

    def _cancel(self, at: datetime, event: _Cancel) -> None:
        run = self.runs[event.run]
        for sequence in event.sequences:
            if sequence in run.cancelled:
                continue
            run.cancelled.add(sequence)
            self._emit(
                PlannedCancellation(
                    at.astimezone(UTC), next(self.seq), event.by, event.run, sequence, event.reason
                )
            )
        if len(event.sequences) < len(run.plan.dates):
            return
        # The whole term is off: everyone goes back to their link worker to be matched again,
        # those waiting first so that no freed place is offered on a course that will not run.
        run.closed = True
        leaving = (
            run.with_status(EnrolmentStatus.WAITLISTED)
            + run.with_status(EnrolmentStatus.OFFERED)
            + run.with_status(EnrolmentStatus.ENROLLED)
        )
        for place in leaving:
            t = self.people[place.index].draft.timeline
            self._withdraw(at, place, "The course was cancelled", t.link_worker)
            day = add_working_days(at.date(), self.rng.randint(1, 4))
            self.push(
                _moment(self.rng, day, time(9, 30), time(16, 30)),
                _Match(place.index, frozenset({run.course.key})),
            )

    def _attends(self, person: _Person, place: _Place, nth: int) -> bool:
        if person.must_attend:
            person.must_attend = False
            return True
        if person.kind == "no_show":
            return False
        if person.kind == "dropout" and place.attended >= person.stop_after:
            return False
        chance = person.attendance - 0.01 * (nth - 1) + (0.05 if nth == 1 else 0)
        return self.rng.random() < chance

    def _session(self, at: datetime, run: _Run, sequence: int) -> None:
        if sequence in run.cancelled or run.closed:
            return
        rng = self.rng
        artist = LEAD_ARTISTS[run.course.provider]
        session_day = run.plan.dates[sequence - 1]
        register = run.register(session_day)
        if not register:
            self._call_off(run, sequence, artist)
            return
        seq = next(self.seq)
        entries: list[PlannedAttendance] = []
        starting: list[_Person] = []
        for place in register:
            person = self.people[place.index]
            nth = run.delivered - place.joined_after + 1
            if self._attends(person, place, nth):
                place.attended += 1
                place.attended_on.append(session_day)
                place.missed_in_row = 0
                place.last_attended = sequence
                moods: tuple[int | None, int | None] = (None, None)
                if rng.random() < 0.9:
                    before = _clip(person.mood + 0.15 * place.attended + rng.gauss(0, 0.9), 0, 9)
                    uplift = _weighted(
                        rng, [(-1, 0.03), (0, 0.14), (1, 0.36), (2, 0.33), (3, 0.14)]
                    )
                    moods = (before, _clip(before + uplift, 0, 10))
                entries.append(PlannedAttendance(place.index, AttendanceStatus.ATTENDED, *moods))
                if run.takes(place, Timepoint.BASELINE, session_day):
                    self._baseline(run, sequence, place, artist)
                if rules.starts(AttendanceStatus.ATTENDED, person.draft.timeline.status):
                    starting.append(person)
            else:
                place.missed_in_row += 1
                gone = person.kind == "dropout" and place.attended >= person.stop_after
                status = _weighted(
                    rng,
                    [
                        (AttendanceStatus.APOLOGIES, 0.3 if gone else 0.6),
                        (AttendanceStatus.NO_SHOW, 0.7 if gone else 0.4),
                    ],
                )
                note = ""
                if status is AttendanceStatus.APOLOGIES and rng.random() < 0.2:
                    note = rng.choice(APOLOGY_NOTES)
                entries.append(PlannedAttendance(place.index, status, note=note))
        self._emit(
            PlannedRegister(at.astimezone(UTC), seq, artist, run.plan.key, sequence, tuple(entries))
        )
        if run.group is None:
            run.group = len(entries)
        run.delivered += 1
        for person in starting:
            t = person.draft.timeline
            t.move_at(
                at,
                Status.STARTED,
                system=True,
                effect=True,
                by=artist,
                note="First attendance",
                course=run.plan.title,
                seq=seq,
            )
        if run.delivered == 2:
            for place in run.with_status(EnrolmentStatus.ENROLLED):
                if place.joined_after == 0 and place.attended == 0 and not place.leaving:
                    place.leaving = True
                    day = add_working_days(session_day, rng.randint(1, 2))
                    self.push(
                        _moment(rng, day, time(9, 30), time(16, 30)),
                        _Leave(place.index, "no_show", place),
                    )
            day = add_working_days(session_day, 3)
            self.push(_moment(rng, day, time(10), time(15)), _Review(run.plan.key))
        for place in run.with_status(EnrolmentStatus.ENROLLED):
            person = self.people[place.index]
            if (
                person.kind == "dropout"
                and place.attended
                and place.missed_in_row >= 2
                and not place.leaving
            ):
                place.leaving = True
                day = add_working_days(session_day, rng.randint(1, 3))
                self.push(
                    _moment(rng, day, time(9, 30), time(16, 30)),
                    _Leave(place.index, "dropout", place),
                )
        not_cancelled = (day for n, day in enumerate(run.plan.dates, 1) if n not in run.cancelled)
        if session_day == rules.course_end(not_cancelled):
            self._complete(at, run, artist, seq)

    def _call_off(self, run: _Run, sequence: int, artist: str) -> None:
        """Nobody is left on the register: the provider cancels the rest of the term."""
        reason = CALLED_OFF if run.delivered else TOO_FEW_BOOKINGS
        at = _session_start(run.plan, sequence) - timedelta(hours=2)
        if not run.delivered:
            run.group = 0
        for later in range(sequence, len(run.plan.dates) + 1):
            if later not in run.cancelled:
                run.cancelled.add(later)
                self._emit(
                    PlannedCancellation(
                        at.astimezone(UTC), next(self.seq), artist, run.plan.key, later, reason
                    )
                )
        run.closed = True

    def _complete(self, at: datetime, run: _Run, artist: str, seq: int) -> None:
        """As `complete_course`, then the end questionnaires, and a close for anyone who came
        to too few sessions."""
        rng = self.rng
        for place in run.with_status(EnrolmentStatus.ENROLLED):
            person = self.people[place.index]
            t = person.draft.timeline
            if rules.completes(place.attended, run.delivered):
                place.status = EnrolmentStatus.COMPLETED
                t.move_at(
                    at,
                    Status.COMPLETED,
                    system=True,
                    effect=True,
                    by=artist,
                    note=f"Completed {run.plan.title}",
                    course=run.plan.title,
                    seq=seq,
                )
                self._end(run, place, artist, person, at)
            elif not place.leaving:
                place.leaving = True
                day = add_working_days(at.date(), rng.randint(2, 8))
                self.push(
                    _moment(rng, day, time(9, 30), time(16, 30)),
                    _Leave(place.index, "incomplete", place),
                )

    def _review(self, at: datetime, run: _Run) -> None:
        """A week into the term, the people still waiting move to the next term, take a place
        on another course, or close."""
        rng = self.rng
        for place in run.with_status(EnrolmentStatus.WAITLISTED):
            person = self.people[place.index]
            t = person.draft.timeline
            fate = (
                "next"
                if person.draft.keep_open
                else _weighted(
                    rng,
                    [
                        ("next", 0.6),
                        ("other", 0.16),
                        (Status.DECLINED, 0.09),
                        (Status.WITHDRAWN, 0.08),
                        (Status.DID_NOT_START, 0.07),
                    ],
                )
            )
            following = None
            if fate == "next":
                following = self._next_run(person, run.course, at.date())
            if fate == "other" or (fate == "next" and following is None):
                following = self._choose_run(person, at.date(), frozenset({run.course.key}))
            if following is not None:
                reason = MOVED_ON if following.course is run.course else TOOK_OTHER_COURSE
                self._withdraw(at, place, reason, t.link_worker)
                self._place(person, following, at)
            elif fate == Status.WITHDRAWN:
                self._close(at, person, Status.WITHDRAWN, rng.choice(WITHDRAWN_FROM_WAITING_LIST))
            elif fate == Status.DID_NOT_START:
                self._close(
                    at,
                    person,
                    Status.DID_NOT_START,
                    "Offered two places but could not take either",
                )
            else:
                self._close(at, person, Status.DECLINED, WAITING_TOO_LONG)

    def _leave(self, at: datetime, event: _Leave) -> None:
        person = self.people[event.index]
        place = event.place
        if person.place is not place or place.status is not EnrolmentStatus.ENROLLED:
            return
        t = person.draft.timeline
        if event.why == "no_show":
            self._close(
                at,
                person,
                Status.DID_NOT_START,
                self.rng.choice(CLOSE_REASONS[Status.DID_NOT_START]),
            )
        elif event.why == "decline":
            self._decline(at, person, place, self.rng.choice(CLOSE_REASONS[Status.DECLINED]))
        elif event.why == "dropout":
            self._withdraw(at, place, self.rng.choice(WITHDRAWN_FROM_COURSE), t.link_worker)
        else:
            reason = (
                f"Came to {place.attended} of {place.run.delivered} sessions; not enough to "
                "complete the course"
            )
            self._withdraw(at, place, reason, t.link_worker)

    def _decline(
        self, at: datetime, person: _Person, place: _Place, reason: str, *, offer_taken: bool = True
    ) -> None:
        """The person no longer wants their place: the link worker closes the referral as
        declined and takes them off the course."""
        t = person.draft.timeline
        t.move_at(at, Status.DECLINED, reason=reason, seq=next(self.seq))
        self._withdraw(at, place, DECLINED_PLACE, t.link_worker, offer_taken=offer_taken)

    def _free_a_place(self, at: datetime) -> None:
        """Shortly before the demo is loaded, someone turns down their place on the next full
        course to start (one with people waiting behind the first, if any is): the first
        person waiting is offered the place, and has until after today to answer."""
        waiting = {
            key: len(run.with_status(EnrolmentStatus.WAITLISTED)) for key, run in self.runs.items()
        }
        full = sorted(
            (
                run
                for run in self.runs.values()
                if not run.closed
                and run.plan.first > self.today
                and self._is_full(run)
                and waiting[run.plan.key]
            ),
            key=lambda run: (waiting[run.plan.key] < 2, run.plan.first, run.plan.key),
        )
        for run in full:
            leaving = [
                place
                for place in run.with_status(EnrolmentStatus.ENROLLED)
                if not self.people[place.index].draft.keep_open
                and self.people[place.index].draft.timeline.now < at
            ]
            if leaving:
                place = leaving[-1]  # the latest to have taken a place
                reason = CLOSE_REASONS[Status.DECLINED][-1]
                self._decline(at, self.people[place.index], place, reason, offer_taken=False)
                return

    # Questionnaires.

    def _questionnaire(
        self,
        run: _Run,
        sequence: int,
        place: _Place,
        by: str,
        instrument: Instrument,
        timepoint: Timepoint,
        total: int,
        *,
        at: datetime | None = None,
    ) -> None:
        moment = at or _session_start(run.plan, sequence) + timedelta(minutes=10)
        self._emit(
            PlannedQuestionnaire(
                moment.astimezone(UTC),
                next(self.seq),
                by,
                place.index,
                run.plan.key,
                instrument,
                timepoint,
                _items(self.rng, total, instrument.item_count),
                moment.date(),
            )
        )

    def _baseline(self, run: _Run, sequence: int, place: _Place, artist: str) -> None:
        """At the first session they come to (the baseline's day), most people fill in SWEMWBS;
        some also WEMWBS."""
        rng = self.rng
        if rng.random() >= 0.9:
            return
        place.baseline = _clip(rng.gauss(19.5, 3.5), 10, 30)
        self._questionnaire(
            run, sequence, place, artist, Instrument.SWEMWBS, Timepoint.BASELINE, place.baseline
        )
        if run.course.wemwbs and rng.random() < 0.6:
            place.baseline_wemwbs = _clip(2 * place.baseline + rng.gauss(0, 3), 14, 70)
            self._questionnaire(
                run,
                sequence,
                place,
                artist,
                Instrument.WEMWBS,
                Timepoint.BASELINE,
                place.baseline_wemwbs,
            )

    def _end(
        self, run: _Run, place: _Place, artist: str, person: _Person, completed: datetime
    ) -> None:
        """At the course's last session (when it `completed`: the end questionnaire's day);
        and for some, a follow-up three months on."""
        rng = self.rng
        at = completed - timedelta(minutes=10)
        if (
            place.baseline is None
            or place.last_attended is None
            or not run.takes(place, Timepoint.END, at.date())
            or rng.random() >= 0.9
        ):
            return
        sequence = place.last_attended
        end = _clip(place.baseline + person.change, 7, 35)
        self._questionnaire(
            run, sequence, place, artist, Instrument.SWEMWBS, Timepoint.END, end, at=at
        )
        if place.baseline_wemwbs is not None and rng.random() < 0.85:
            self._questionnaire(
                run,
                sequence,
                place,
                artist,
                Instrument.WEMWBS,
                Timepoint.END,
                _clip(2 * end + rng.gauss(0, 3), 14, 70),
                at=at,
            )
        follow_up = add_working_days(run.plan.last + timedelta(weeks=12), rng.randint(0, 10))
        if (
            follow_up <= self.last_day
            and run.takes(place, Timepoint.FOLLOW_UP, follow_up)
            and rng.random() < 0.3
        ):
            self._questionnaire(
                run,
                sequence,
                place,
                person.draft.timeline.link_worker,
                Instrument.SWEMWBS,
                Timepoint.FOLLOW_UP,
                _clip(end + rng.gauss(-1, 2), 7, 35),
                at=_moment(rng, follow_up, time(10), time(16)),
            )


MIN_GROUP = 2  # a term that would start with fewer people does not run


def plan_demo_scheme(*, today: date, seed: int = 2026) -> DemoPlan:
    """The demo scheme as of `today`: contracts, course runs, referrals and everything that
    happened to them; pure and deterministic for a seed.

    Providers only run the terms people sign up for: a term that would have started with fewer
    than `MIN_GROUP` people is left out and the year played again. Cathedral Voices' current
    terms always stay, so its lead artist has registers to take this week.
    """
    runs = plan_runs(today)
    for _attempt in range(10):
        drafts = draft_demo_referrals(today=today, seed=seed)
        year = _SchemeYear(random.Random(seed + 1), drafts, runs, today)  # noqa: S311 - demo data
        events = year.play()
        thin = {
            run.plan.key
            for run in year.runs.values()
            if run.group is not None
            and run.group < MIN_GROUP
            and not (run.course.provider == "Cathedral Voices CIC" and run.plan.last >= today)
        }
        for course_runs in year.by_course.values():
            # Every course keeps at least its best-attended term.
            ran = [r for r in course_runs if r.group]
            if ran and all(r.plan.key in thin for r in ran):
                thin.discard(max(ran, key=lambda r: (r.group or 0, r.plan.first)).plan.key)
        if not thin:
            break
        runs = tuple(r for r in runs if r.key not in thin)
    recorded_until = max(last_planned_day(today), place_freed_at(today).date())
    return DemoPlan(
        today=today,
        referrals=tuple(d.planned(recorded_until) for d in drafts),
        contracts=plan_contracts(today),
        runs=runs,
        events=tuple(sorted(events, key=lambda e: (e.at, e.seq))),
        open_offers=tuple(year.open_offers),
    )


def plan_demo_referrals(*, today: date, seed: int = 2026) -> list[PlannedReferral]:
    """The demo scheme's referrals, each with every step up to `today`; pure."""
    return list(plan_demo_scheme(today=today, seed=seed).referrals)


# --- Applying the plan through the services ----------------------------------------------------


class _Redater:
    """The course services date registers, completions, withdrawals, offers of places,
    cancellations and the messages they send with the current time. Loading history after
    the fact, this moves what one call recorded to when the plan says it happened."""

    def __init__(self, referrals: dict[int, Referral]) -> None:
        self.referrals = referrals  # by id
        self.transition_id = 0
        self.notification_id = 0

    def mark(self) -> None:
        db.session.flush()
        latest = db.session.execute(
            select(
                select(func.max(ReferralTransition.id)).scalar_subquery(),
                select(func.max(Notification.id)).scalar_subquery(),
            )
        ).one()
        self.transition_id, self.notification_id = latest[0] or 0, latest[1] or 0

    def redate(self, at: datetime) -> None:
        db.session.flush()
        moved = db.session.scalars(
            update(ReferralTransition)
            .where(ReferralTransition.id > self.transition_id)
            .values(at=at)
            .returning(ReferralTransition.referral_id),
            execution_options={"synchronize_session": False},
        ).all()
        for referral_id in moved:
            self.referrals[referral_id].status_changed_at = at
        db.session.execute(
            update(Notification)
            .where(Notification.id > self.notification_id)
            .values(created_at=at),
            execution_options={"synchronize_session": False},
        )


def _create_catalogue(
    plan: DemoPlan, organisations: dict[str, Organisation], accounts: Accounts
) -> dict[str, Course]:
    """Contracts, venues and every run's Course row with its sessions."""
    contracts = {
        c.key: save_contract(
            None,
            ContractFields(
                name=c.name,
                commissioner=organisations[c.commissioner],
                start_date=c.start,
                end_date=c.end,
                targets=c.targets,
            ),
            today=plan.today,
        )
        for c in plan.contracts
    }
    venues = {
        key: create_venue(
            None, VenueFields(v.name, v.address, v.postcode, accessibility=v.accessibility)
        )
        for key, v in VENUES.items()
    }
    courses: dict[str, Course] = {}
    for run in plan.runs:
        course = COURSES[run.course]
        courses[run.key] = create_course(
            accounts[ADMIN],
            CourseFields(
                title=run.title,
                art_form=course.art_form,
                provider=organisations[course.provider],
                contract=contracts[course.contract],
                venue=venues[course.venue],
                capacity=course.capacity,
                schedule=run.schedule,
                description=course.description,
                pathways=course.pathways,
                min_age=course.min_age,
                max_age=course.max_age,
                cost_per_session_pence=course.cost_pence,
                lead_artists=[accounts[LEAD_ARTISTS[course.provider]]],
            ),
        )
    return courses


def _london_day(at: datetime) -> date:
    return at.astimezone(LONDON).date()


@loading_history()
def apply_demo_scheme(plan: DemoPlan, organisations: dict[str, Organisation]) -> list[Referral]:
    """Create the catalogue, then replay everything in the plan through the services, in the
    order it happened; no commit. It is history: no email or text message is queued for it,
    however the service sends them."""
    emails = {r.referrer for r in plan.referrals} | {LINK_WORKER, LINK_WORKER_2, ADMIN}
    accounts = Accounts.load(emails | set(LEAD_ARTISTS.values()))
    courses = _create_catalogue(plan, organisations, accounts)
    sessions: dict[str, list[CourseSession]] = {
        key: list(
            db.session.scalars(
                select(CourseSession)
                .where(CourseSession.course_id == course.id)
                .order_by(CourseSession.sequence)
            )
        )
        for key, course in courses.items()
    }
    referrals: dict[int, Referral] = {}
    by_id: dict[int, Referral] = {}
    enrolments: dict[tuple[int, str], Enrolment] = {}
    redater = _Redater(by_id)
    last_session = {run.key: len(run.dates) for run in plan.runs}

    for index, item in plan.stream():
        if isinstance(item, PlannedReferral):
            assert index is not None
            referral = create_planned_referral(item, accounts, organisations)
            referrals[index] = by_id[referral.id] = referral
        elif isinstance(item, PlannedAssign | PlannedContact | PlannedConversation):
            assert index is not None
            apply_intake_step(item, referrals[index], accounts)
        elif isinstance(item, PlannedMove):
            assert index is not None
            if not item.effect:
                apply_intake_step(item, referrals[index], accounts)
        elif isinstance(item, PlannedEnrol):
            assert index is not None
            enrolment = enrol(
                accounts[item.by],
                referrals[index],
                courses[item.run],
                today=_london_day(item.at),
                at=item.at,
            )
            if enrolment.referral.status is not item.result:
                raise RuntimeError(
                    f"the plan expected {item.result} on {item.run}, "
                    f"the services made it {enrolment.referral.status}"
                )
            enrolment.created_at = item.at
            enrolments[(index, item.run)] = enrolment
        elif isinstance(item, PlannedWithdrawal):
            assert index is not None
            enrolment = enrolments[(index, item.run)]
            redater.mark()
            offered = withdraw(
                accounts[item.by], enrolment, item.reason, today=_london_day(item.at)
            )
            enrolment.withdrawn_at = item.at
            if offered is not None and item.offer_taken:
                # The demo's people take a place offered to them the day it is offered.
                accept_offer(accounts[item.by], offered, today=_london_day(item.at))
                offered.enrolled_at = item.at
            redater.redate(item.at)
        elif isinstance(item, PlannedCancellation):
            redater.mark()
            cancel_session(accounts[item.by], sessions[item.run][item.session - 1], item.reason)
            redater.redate(item.at)
        elif isinstance(item, PlannedRegister):
            session = sessions[item.run][item.session - 1]
            redater.mark()
            save_register(
                accounts[item.by],
                session,
                [
                    RegisterEntry(
                        enrolment_id=enrolments[(entry.referral, item.run)].id,
                        status=entry.status,
                        mood_before=entry.mood_before,
                        mood_after=entry.mood_after,
                        note=entry.note,
                    )
                    for entry in item.entries
                ],
                today=session.date,
            )
            session.register_saved_at = item.at
            db.session.execute(
                update(Attendance)
                .where(Attendance.session_id == session.id)
                .values(recorded_at=item.at)
            )
            if item.session == last_session[item.run]:
                for enrolment in db.session.scalars(
                    select(Enrolment).where(
                        Enrolment.course_id == session.course_id,
                        Enrolment.status == EnrolmentStatus.COMPLETED,
                    )
                ):
                    enrolment.completed_at = item.at
            redater.redate(item.at)
        else:
            assessment = record_wellbeing(
                accounts[item.by],
                enrolments[(item.referral, item.run)],
                item.instrument,
                item.timepoint,
                list(item.items),
                recorded_on=item.recorded_on,
                today=item.recorded_on,
            )
            assessment.created_at = item.at

    for index, planned in enumerate(plan.referrals):
        if referrals[index].status is not planned.status:
            raise RuntimeError(
                f"referral {index}: the plan expected {planned.status}, "
                f"the services made it {referrals[index].status}"
            )
    _check_open_offers(plan, referrals, courses)
    _mark_old_messages_read(plan.today)
    return [referrals[i] for i in range(len(plan.referrals))]


def _check_open_offers(
    plan: DemoPlan, referrals: dict[int, Referral], courses: dict[str, Course]
) -> None:
    offered = {
        (e.referral_id, e.course_id, e.offer_expires_on)
        for e in db.session.scalars(
            select(Enrolment).where(Enrolment.status == EnrolmentStatus.OFFERED)
        )
    }
    planned = {(referrals[o.referral].id, courses[o.run].id, o.reply_by) for o in plan.open_offers}
    if offered != planned:
        raise RuntimeError(
            f"the plan expected places on offer {planned}, the services offered {offered}"
        )


def _mark_old_messages_read(today: date) -> None:
    """Demo users have read their older messages, so each inbox shows the recent ones."""
    cutoff = datetime.combine(today - timedelta(days=UNREAD_DAYS), time(), tzinfo=LONDON)
    users = db.session.scalars(select(User).where(User.email.like("%@demo.test"))).all()
    rows = []
    for user in users:
        if user.role == Role.ADMIN:
            continue
        for notification_id, created_at in db.session.execute(
            select(Notification.id, Notification.created_at).where(
                (Notification.user_id == user.id)
                | (
                    Notification.user_id.is_(None)
                    & (Notification.organisation_id == user.organisation_id)
                ),
                Notification.created_at < cutoff,
            )
        ):
            rows.append(
                {
                    "notification_id": notification_id,
                    "user_id": user.id,
                    "read_at": created_at + timedelta(hours=20),
                }
            )
    if rows:
        db.session.execute(insert(NotificationRead), rows)


def seed_demo_scheme(
    organisations: dict[str, Organisation], *, today: date, seed: int = 2026
) -> list[Referral]:
    """The demo scheme's courses and referrals as of `today`; the caller commits."""
    return apply_demo_scheme(plan_demo_scheme(today=today, seed=seed), organisations)
