"""Course schedules: expansion into dated sessions, bank holidays, term breaks, validation and
the one-line summary."""

from __future__ import annotations

import itertools
from datetime import date, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.courses.schedule import (
    Frequency,
    InvalidSchedule,
    PlannedSession,
    Schedule,
    describe,
    end_date,
    expand,
    weekday_name,
)
from referrals.workdays import is_bank_holiday

WEEKLY, FORTNIGHTLY = Frequency.WEEKLY, Frequency.FORTNIGHTLY


def schedule(**overrides: object) -> Schedule:
    """Weekly on Tuesdays from 3 March 2026, 10:00 to 12:00, 8 sessions, unless overridden."""
    fields: dict[str, object] = {
        "start_date": date(2026, 3, 3),
        "start_time": time(10, 0),
        "duration_minutes": 120,
        "frequency": WEEKLY,
        "sessions": 8,
    }
    fields.update(overrides)
    return Schedule(**fields)  # type: ignore[arg-type]


def dates_of(planned: list[PlannedSession]) -> list[date]:
    return [session.date for session in planned]


def days(*iso: str) -> list[date]:
    return [date.fromisoformat(day) for day in iso]


# Expansion


def test_weekly_course_runs_every_week_on_the_start_day():
    planned = expand(schedule())

    assert dates_of(planned) == days(
        "2026-03-03", "2026-03-10", "2026-03-17", "2026-03-24",
        "2026-03-31", "2026-04-07", "2026-04-14", "2026-04-21",
    )  # fmt: skip
    assert [session.sequence for session in planned] == list(range(1, 9))
    assert all(session.start_time == time(10, 0) for session in planned)
    assert all(session.duration_minutes == 120 for session in planned)
    assert all(session.end_time == time(12, 0) for session in planned)
    assert not any(session.is_taster for session in planned)


def test_fortnightly_course_runs_every_other_week():
    planned = expand(schedule(start_date=date(2026, 1, 8), frequency=FORTNIGHTLY, sessions=5))

    assert dates_of(planned) == days(
        "2026-01-08", "2026-01-22", "2026-02-05", "2026-02-19", "2026-03-05"
    )


def test_taster_sessions_come_first_and_are_flagged():
    planned = expand(schedule(sessions=3, taster_sessions=2))

    assert dates_of(planned) == days(
        "2026-03-03", "2026-03-10", "2026-03-17", "2026-03-24", "2026-03-31"
    )
    assert [session.is_taster for session in planned] == [True, True, False, False, False]
    assert [session.sequence for session in planned] == [1, 2, 3, 4, 5]


def test_single_session_course():
    planned = expand(schedule(sessions=1))

    assert planned == [
        PlannedSession(
            sequence=1,
            date=date(2026, 3, 3),
            start_time=time(10, 0),
            duration_minutes=120,
            is_taster=False,
        )
    ]


# Bank holidays


def test_monday_course_moves_past_easter_monday_and_the_may_bank_holidays():
    planned = expand(schedule(start_date=date(2026, 3, 23), sessions=8))

    # 6 April (Easter Monday), 4 May and 25 May are skipped; the course still has 8 sessions.
    assert dates_of(planned) == days(
        "2026-03-23", "2026-03-30", "2026-04-13", "2026-04-20",
        "2026-04-27", "2026-05-11", "2026-05-18", "2026-06-01",
    )  # fmt: skip


def test_bank_holidays_are_kept_when_the_course_runs_on_them():
    planned = expand(schedule(start_date=date(2026, 3, 23), sessions=8, skip_bank_holidays=False))

    assert dates_of(planned) == days(
        "2026-03-23", "2026-03-30", "2026-04-06", "2026-04-13",
        "2026-04-20", "2026-04-27", "2026-05-04", "2026-05-11",
    )  # fmt: skip


def test_fortnightly_friday_course_moves_past_good_friday():
    planned = expand(schedule(start_date=date(2026, 3, 20), frequency=FORTNIGHTLY, sessions=3))

    assert dates_of(planned) == days("2026-03-20", "2026-04-17", "2026-05-01")


def test_course_starting_on_a_bank_holiday_begins_the_next_week():
    planned = expand(schedule(start_date=date(2026, 4, 6), sessions=2, taster_sessions=1))

    assert dates_of(planned) == days("2026-04-13", "2026-04-20", "2026-04-27")
    assert planned[0].is_taster


def test_christmas_day_and_new_years_day_are_skipped():
    planned = expand(schedule(start_date=date(2025, 12, 18), sessions=3))  # Thursdays

    assert dates_of(planned) == days("2025-12-18", "2026-01-08", "2026-01-15")


def test_bank_holidays_come_for_every_year_not_only_a_listed_few():
    # Mondays from 18 December 2028: Christmas Day and New Year's Day 2029 are both Mondays.
    planned = expand(schedule(start_date=date(2028, 12, 18), sessions=3))

    assert dates_of(planned) == days("2028-12-18", "2029-01-08", "2029-01-15")


# Term breaks


def test_term_break_skips_the_weeks_inside_it_and_keeps_the_count():
    planned = expand(
        schedule(
            start_date=date(2026, 1, 7),
            sessions=6,
            term_breaks=((date(2026, 1, 19), date(2026, 2, 1)),),
        )
    )

    assert dates_of(planned) == days(
        "2026-01-07", "2026-01-14", "2026-02-04", "2026-02-11", "2026-02-18", "2026-02-25"
    )


def test_term_break_dates_are_inclusive():
    planned = expand(
        schedule(
            start_date=date(2026, 1, 7),
            sessions=3,
            term_breaks=((date(2026, 1, 14), date(2026, 1, 14)),),
        )
    )

    assert dates_of(planned) == days("2026-01-07", "2026-01-21", "2026-01-28")


def test_three_terms_of_ten_sessions_plus_two_tasters():
    planned = expand(
        schedule(
            start_date=date(2025, 9, 9),
            sessions=30,
            taster_sessions=2,
            term_breaks=(
                (date(2025, 11, 26), date(2026, 1, 4)),
                (date(2026, 3, 11), date(2026, 4, 19)),
            ),
        )
    )

    assert len(planned) == 32
    tasters, regular = planned[:2], planned[2:]
    assert dates_of(tasters) == days("2025-09-09", "2025-09-16")
    assert all(session.is_taster for session in tasters)
    assert not any(session.is_taster for session in regular)
    autumn = [s for s in regular if s.date < date(2025, 11, 26)]
    spring = [s for s in regular if date(2026, 1, 4) < s.date < date(2026, 3, 11)]
    summer = [s for s in regular if s.date > date(2026, 4, 19)]
    assert (len(autumn), len(spring), len(summer)) == (10, 10, 10)
    assert (autumn[0].date, autumn[-1].date) == (date(2025, 9, 23), date(2025, 11, 25))
    assert (spring[0].date, spring[-1].date) == (date(2026, 1, 6), date(2026, 3, 10))
    assert (summer[0].date, summer[-1].date) == (date(2026, 4, 21), date(2026, 6, 23))
    assert end_date(planned) == date(2026, 6, 23)


def test_course_starting_inside_a_term_break_begins_after_it():
    planned = expand(schedule(sessions=2, term_breaks=((date(2026, 3, 1), date(2026, 3, 12)),)))

    assert dates_of(planned) == days("2026-03-17", "2026-03-24")


def test_term_breaks_and_bank_holidays_together():
    planned = expand(
        schedule(
            start_date=date(2026, 3, 23),
            sessions=4,
            term_breaks=((date(2026, 3, 28), date(2026, 4, 12)),),
        )
    )

    assert dates_of(planned) == days("2026-03-23", "2026-04-13", "2026-04-20", "2026-04-27")


# Validation


def errors_for(**overrides: object) -> dict[str, list[str]]:
    with pytest.raises(InvalidSchedule) as refused:
        expand(schedule(**overrides))
    return refused.value.errors


@pytest.mark.parametrize("sessions", [0, -1, 201])
def test_number_of_sessions_must_be_between_1_and_200(sessions):
    assert errors_for(sessions=sessions) == {
        "sessions": ["Number of sessions must be between 1 and 200"]
    }


@pytest.mark.parametrize("tasters", [-1, 11])
def test_number_of_taster_sessions_must_be_between_0_and_10(tasters):
    assert errors_for(taster_sessions=tasters) == {
        "taster_sessions": ["Number of taster sessions must be between 0 and 10"]
    }


@pytest.mark.parametrize("minutes", [0, 14, 481])
def test_session_length_must_be_between_15_and_480_minutes(minutes):
    assert errors_for(duration_minutes=minutes) == {
        "duration_minutes": ["Session length must be between 15 and 480 minutes"]
    }


def test_limits_themselves_are_allowed():
    assert len(expand(schedule(sessions=200, taster_sessions=10, duration_minutes=15))) == 210
    assert len(expand(schedule(sessions=1, taster_sessions=0, duration_minutes=480))) == 1
    longest = expand(schedule(frequency=FORTNIGHTLY, sessions=200, taster_sessions=10))
    assert len(longest) == 210


def test_session_must_not_run_past_midnight():
    assert errors_for(start_time=time(22, 0), duration_minutes=150) == {
        "duration_minutes": [
            "A session must finish by midnight; this one would end at 00:30 the next day"
        ]
    }


def test_session_may_end_at_midnight():
    planned = expand(schedule(start_time=time(22, 0), duration_minutes=120))

    assert planned[0].end_time == time(0, 0)


def test_term_break_must_not_end_before_it_starts():
    errors = errors_for(
        term_breaks=(
            (date(2026, 4, 1), date(2026, 4, 10)),
            (date(2026, 6, 10), date(2026, 6, 1)),
        )
    )

    assert errors == {"term_breaks": ["Term break 2 must end on or after the day it starts"]}


def test_every_field_error_is_reported_at_once():
    errors = errors_for(
        sessions=0,
        taster_sessions=11,
        duration_minutes=500,
        term_breaks=((date(2026, 5, 2), date(2026, 5, 1)),),
    )

    assert set(errors) == {"sessions", "taster_sessions", "duration_minutes", "term_breaks"}


def test_term_breaks_that_push_the_course_too_far_are_refused():
    errors = errors_for(term_breaks=((date(2026, 3, 10), date(2040, 1, 1)),))

    assert errors == {
        "term_breaks": ["All the sessions must fall within 10 years of the start date"]
    }


def test_invalid_schedule_is_a_value_error_naming_the_fields():
    with pytest.raises(ValueError, match="sessions"):
        expand(schedule(sessions=0))


def test_course_near_the_end_of_the_calendar_is_refused_not_crashed():
    errors = errors_for(start_date=date(9999, 12, 1), sessions=10)

    assert list(errors) == ["sessions"]


# Helpers and the summary


def test_frequency_labels():
    assert WEEKLY.label == "Weekly"
    assert FORTNIGHTLY.label == "Every two weeks"
    assert Frequency("fortnightly") is FORTNIGHTLY
    assert WEEKLY == "weekly"


def test_weekday_name_is_the_start_dates_weekday():
    assert weekday_name(schedule()) == "Tuesday"
    assert weekday_name(schedule(start_date=date(2026, 3, 8))) == "Sunday"


def test_end_date_is_the_last_session():
    assert end_date(expand(schedule())) == date(2026, 4, 21)
    with pytest.raises(ValueError):
        end_date([])


def test_describe_weekly_with_tasters():
    assert describe(schedule(taster_sessions=2)) == (
        "Weekly on Tuesdays, 10:00 to 12:00, 8 sessions from 3 March 2026 (plus 2 taster sessions)"
    )


def test_describe_fortnightly_single_session_and_taster():
    text = describe(
        schedule(
            start_date=date(2026, 1, 8),
            start_time=time(14, 30),
            duration_minutes=90,
            frequency=FORTNIGHTLY,
            sessions=1,
            taster_sessions=1,
        )
    )

    assert text == (
        "Every two weeks on Thursdays, 14:30 to 16:00, 1 session from 8 January 2026 "
        "(plus 1 taster session)"
    )


def test_describe_gives_the_first_real_session_and_term_breaks():
    text = describe(
        schedule(
            start_date=date(2026, 4, 6),
            start_time=time(22, 0),
            duration_minutes=120,
            sessions=20,
            term_breaks=(
                (date(2026, 5, 1), date(2026, 5, 31)),
                (date(2026, 7, 20), date(2026, 9, 6)),
            ),
        )
    )

    assert text == (
        "Weekly on Mondays, 22:00 to midnight, 20 sessions from 13 April 2026 with 2 term breaks"
    )


def test_describe_refuses_an_invalid_schedule():
    with pytest.raises(InvalidSchedule):
        describe(schedule(sessions=0))


# Properties

term_break = st.tuples(
    st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    st.integers(min_value=0, max_value=90),
).map(lambda pair: (pair[0], pair[0] + timedelta(days=pair[1])))

schedules = st.builds(
    Schedule,
    start_date=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    start_time=st.times(max_value=time(15, 59)).map(lambda t: t.replace(second=0, microsecond=0)),
    duration_minutes=st.integers(min_value=15, max_value=480),
    frequency=st.sampled_from(Frequency),
    sessions=st.integers(min_value=1, max_value=60),
    taster_sessions=st.integers(min_value=0, max_value=10),
    skip_bank_holidays=st.booleans(),
    term_breaks=st.lists(term_break, max_size=4).map(tuple),
)


def in_a_break(day: date, breaks: tuple[tuple[date, date], ...]) -> bool:
    return any(first <= day <= last for first, last in breaks)


@given(schedules)
def test_count_is_sessions_plus_tasters_with_tasters_first(s):
    planned = expand(s)

    assert len(planned) == s.sessions + s.taster_sessions
    assert [p.sequence for p in planned] == list(range(1, len(planned) + 1))
    assert [p.is_taster for p in planned] == [True] * s.taster_sessions + [False] * s.sessions


@given(schedules)
def test_dates_increase_on_the_start_weekday_in_whole_periods(s):
    planned = expand(s)
    dates = dates_of(planned)
    period = 7 * (2 if s.frequency is FORTNIGHTLY else 1)

    assert dates[0] >= s.start_date
    assert all(later > earlier for earlier, later in itertools.pairwise(dates))
    assert all(day.weekday() == s.start_date.weekday() for day in dates)
    assert all((day - s.start_date).days % period == 0 for day in dates)
    assert all((later - earlier).days % period == 0 for earlier, later in itertools.pairwise(dates))
    assert end_date(planned) == dates[-1]


@given(schedules)
def test_no_session_on_a_skipped_bank_holiday_or_in_a_term_break(s):
    dates = dates_of(expand(s))

    if s.skip_bank_holidays:
        assert not any(is_bank_holiday(day) for day in dates)
    assert not any(in_a_break(day, s.term_breaks) for day in dates)


@given(schedules)
def test_only_excluded_occurrences_are_passed_over(s):
    dates = dates_of(expand(s))
    period = timedelta(weeks=2 if s.frequency is FORTNIGHTLY else 1)

    day = s.start_date
    while day <= dates[-1]:
        excluded = (s.skip_bank_holidays and is_bank_holiday(day)) or in_a_break(day, s.term_breaks)
        assert (day in dates) is not excluded
        day += period


@given(schedules)
def test_every_session_keeps_the_schedules_time_and_length(s):
    planned = expand(s)

    assert {(p.start_time, p.duration_minutes) for p in planned} == {
        (s.start_time, s.duration_minutes)
    }
    assert describe(s).startswith(f"{s.frequency.label} on {weekday_name(s)}s, ")
