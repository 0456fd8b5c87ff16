"""The course place rules the services and the demo generator share (referrals/courses/rules.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from referrals.courses import rules
from referrals.courses.models import AttendanceStatus, EnrolmentStatus
from referrals.intake.lifecycle import Status


def test_a_place_while_one_is_free_counting_places_on_offer() -> None:
    assert rules.enrolment_outcome(8, 7) == (EnrolmentStatus.ENROLLED, Status.ENROLLED)
    assert rules.enrolment_outcome(8, 8) == (EnrolmentStatus.WAITLISTED, Status.WAITLISTED)
    assert rules.places_free(8, 9) == 0 and rules.is_full(8, 9)
    assert rules.holds_place(EnrolmentStatus.OFFERED) and not rules.holds_place(
        EnrolmentStatus.WAITLISTED
    )


def test_freed_places_go_to_the_longest_waiting_then_the_first_recorded() -> None:
    early, late = datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 6, 9, tzinfo=UTC)
    waiting = [(4, late), (9, early), (3, early), (1, None)]

    def order(row: tuple[int, datetime | None]) -> tuple[datetime, int]:
        return rules.waiting_order(row[1], row[0])

    assert [i for i, _ in rules.offered_next(waiting, 2, order)] == [3, 9]
    assert [i for i, _ in rules.in_waiting_order(waiting, order)] == [3, 9, 4, 1]
    assert rules.offered_next(waiting, 0, order) == []
    assert rules.offer_reply_by(date(2026, 3, 13)) == date(2026, 3, 16)


def test_completion_needs_three_quarters_of_delivered_sessions_rounded_up() -> None:
    assert rules.completes(6, 8) and not rules.completes(5, 8)
    assert rules.completes(8, 10) and not rules.completes(7, 10)
    assert not rules.completes(0, 0)
    assert rules.course_end([date(2026, 3, 2), date(2026, 3, 9)]) == date(2026, 3, 9)
    assert rules.course_end([]) is None


def test_starting_and_where_giving_up_a_place_leaves_the_referral() -> None:
    assert rules.starts(AttendanceStatus.ATTENDED, Status.ENROLLED)
    assert not rules.starts(AttendanceStatus.ATTENDED, Status.STARTED)
    assert not rules.starts(AttendanceStatus.APOLOGIES, Status.ENROLLED)
    assert rules.referral_after_withdrawal(Status.WAITLISTED) is Status.ASSESSED
    assert rules.referral_after_withdrawal(Status.ENROLLED) is Status.ASSESSED
    assert rules.referral_after_withdrawal(Status.STARTED) is Status.WITHDRAWN
    assert rules.referral_after_withdrawal(Status.DECLINED) is None


def test_age_is_checked_on_the_day_the_person_would_join() -> None:
    assert rules.age_checked_on(date(2026, 4, 1), date(2026, 3, 1)) == date(2026, 4, 1)
    assert rules.age_checked_on(date(2026, 2, 1), date(2026, 3, 1)) == date(2026, 3, 1)
    assert rules.in_age_range(16, 16, 25) and not rules.in_age_range(26, 16, 25)
    assert rules.in_age_range(90, None, None)


def test_a_register_lists_the_places_on_the_course_taken_by_the_end_of_its_day() -> None:
    winter, summer = date(2026, 3, 9), date(2026, 7, 6)  # GMT, then BST: the day ends at 23:00
    late, too_late = datetime(2026, 3, 9, 23, 59, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC)
    assert rules.on_register(EnrolmentStatus.ENROLLED, late, winter)
    assert not rules.on_register(EnrolmentStatus.ENROLLED, too_late, winter)
    assert not rules.on_register(
        EnrolmentStatus.ENROLLED, datetime(2026, 7, 6, 23, 30, tzinfo=UTC), summer
    )
    assert rules.on_register(EnrolmentStatus.COMPLETED, late, summer)
    assert rules.on_register(EnrolmentStatus.ENROLLED, None, winter)
    for status in (EnrolmentStatus.WITHDRAWN, EnrolmentStatus.WAITLISTED, EnrolmentStatus.OFFERED):
        assert not rules.on_register(status, late, summer)
