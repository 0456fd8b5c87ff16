"""The referral lifecycle table: every allowed move, every refused one, codes and reasons."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.intake.lifecycle import (
    CLOSED_STATUSES,
    CLOSING_STATUSES,
    OPEN_STATUSES,
    SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING,
    SNOMED_SOCIAL_PRESCRIBING_DECLINED,
    TRANSITIONS,
    Actor,
    Status,
    TransitionRefused,
    check_transition,
    close_reason_category,
    next_steps,
    snomed_code_for,
)

ALL_PAIRS = list(itertools.product(Status, Status))

# The lifecycle as the product describes it, written out independently of the table.
EXPECTED_PERSON_MOVES = {
    ("received", "contacting"), ("received", "assessed"), ("contacting", "assessed"),
    *{(s, c) for s in ("received",) for c in ("declined", "not_suitable", "withdrawn")},
    *{(s, c) for s in ("contacting",)
      for c in ("declined", "unable_to_contact", "not_suitable", "withdrawn")},
    *{(s, c) for s in ("assessed",) for c in ("declined", "not_suitable", "withdrawn")},
    *{(s, c) for s in ("enrolled", "waitlisted")
      for c in ("did_not_start", "declined", "withdrawn")},
    ("started", "withdrawn"),
    *{(closed, "contacting") for closed in
      ("completed", "declined", "unable_to_contact", "not_suitable", "did_not_start",
       "withdrawn")},
}  # fmt: skip
EXPECTED_SYSTEM_MOVES = {
    ("assessed", "enrolled"), ("assessed", "waitlisted"), ("waitlisted", "enrolled"),
    ("enrolled", "assessed"), ("waitlisted", "assessed"), ("enrolled", "started"),
    ("started", "completed"),
}  # fmt: skip


def test_the_table_is_exactly_the_documented_lifecycle():
    person = {(a.value, b.value) for (a, b), m in TRANSITIONS.items() if m.actor is Actor.PERSON}
    system = {(a.value, b.value) for (a, b), m in TRANSITIONS.items() if m.actor is Actor.SYSTEM}
    assert person == EXPECTED_PERSON_MOVES
    assert system == EXPECTED_SYSTEM_MOVES


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=lambda s: s.value)
def test_every_pair_is_allowed_or_refused_with_a_message(current, target):
    key = (current.value, target.value)
    if key in EXPECTED_PERSON_MOVES:
        move = check_transition(current, target, actor=Actor.PERSON, reason="because")
        assert move is TRANSITIONS[(current, target)]
    elif key in EXPECTED_SYSTEM_MOVES:
        assert check_transition(current, target, actor=Actor.SYSTEM).actor is Actor.SYSTEM
        with pytest.raises(TransitionRefused, match="set by enrolling"):
            check_transition(current, target, actor=Actor.PERSON, reason="because")
    else:
        for actor in Actor:
            with pytest.raises(TransitionRefused, match="cannot move to"):
                check_transition(current, target, actor=actor, reason="because")


@pytest.mark.parametrize("target", sorted(CLOSING_STATUSES))
def test_closing_needs_a_reason(target):
    source = next(a for (a, b) in TRANSITIONS if b is target)
    with pytest.raises(TransitionRefused, match="Give a reason"):
        check_transition(source, target, actor=Actor.PERSON, reason="   ")


@pytest.mark.parametrize("closed", sorted(CLOSED_STATUSES))
def test_reopening_needs_a_reason_and_returns_to_triage(closed):
    with pytest.raises(TransitionRefused, match="Give a reason"):
        check_transition(closed, Status.CONTACTING, actor=Actor.PERSON)
    move = check_transition(closed, Status.CONTACTING, actor=Actor.PERSON, reason="asked again")
    assert move.needs_reason and move.actor is Actor.PERSON


def test_snomed_codes_for_accepting_and_declining():
    assert snomed_code_for(Status.CONTACTING, Status.ASSESSED) == "871731000000106"
    assert (
        snomed_code_for(Status.RECEIVED, Status.ASSESSED) == SNOMED_REFERRED_TO_SOCIAL_PRESCRIBING
    )
    assert snomed_code_for(Status.ASSESSED, Status.DECLINED) == "871711000000103"
    assert snomed_code_for(Status.RECEIVED, Status.DECLINED) == SNOMED_SOCIAL_PRESCRIBING_DECLINED
    assert snomed_code_for(Status.ENROLLED, Status.STARTED) is None


def test_close_reasons_map_to_the_kpi_breakdown():
    assert close_reason_category(Status.WITHDRAWN) == "other"
    assert close_reason_category(Status.UNABLE_TO_CONTACT) == "unable_to_contact"
    assert close_reason_category(Status.STARTED) is None


def test_open_and_closed_partition_the_statuses():
    assert OPEN_STATUSES.isdisjoint(CLOSED_STATUSES)
    assert set(Status) == OPEN_STATUSES | CLOSED_STATUSES


@given(st.lists(st.sampled_from(list(Status)), max_size=30))
def test_any_walk_through_allowed_moves_stays_consistent(targets):
    """Every move the table offers is accepted, every other is refused, and a closed referral
    can only leave by reopening."""
    current = Status.RECEIVED
    for target in targets:
        allowed = set(next_steps(current, Actor.SYSTEM))
        if target not in allowed:
            with pytest.raises(TransitionRefused):
                check_transition(current, target, actor=Actor.SYSTEM, reason="r")
            continue
        check_transition(current, target, actor=Actor.SYSTEM, reason="r")
        if current in CLOSED_STATUSES:
            assert target is Status.CONTACTING
        current = target
