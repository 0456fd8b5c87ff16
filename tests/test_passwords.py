"""The password policy: length, common and guessable passwords; no composition rules."""

from __future__ import annotations

import pytest

from referrals.auth.passwords import password_problem


@pytest.mark.parametrize(
    "password",
    [
        "slow rivers run deep",
        "correct-kettle-umbrella",
        "Tuesday choir at 10",
        "x" * 5 + "yzw" * 3 + "q" * 4,
    ],
)
def test_long_uncommon_passwords_are_accepted(password):
    assert password_problem(password) is None


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 12"),
        ("x" * 129, "128 characters or fewer"),
        ("password1234", "too common"),
        ("Password1234", "too common"),
        ("aaaaaaaaaaaa", "repeated"),
        ("abcabcabcabc", "repeated"),
        ("!!password!!2024", "too easy"),
        ("qwerty!!!!2025", "too easy"),
        ("1234567890123", "too common"),
        ("98765432109876", "sequence"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password, message):
    problem = password_problem(password)
    assert problem is not None and message in problem


def test_passwords_based_on_the_account_are_refused():
    assert "email" in password_problem("jsmith-is-here", email="jsmith@example.org")
    assert "name" in password_problem("Okafor2026!!", name="Sam Okafor")
