"""Patient detail checks: NHS number, postcode, date of birth, phone, and the referral's contact
and risk rules."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referrals.forms import parse_uk_date
from referrals.intake.validation import (
    InvalidValue,
    age_on,
    clean_date_of_birth,
    clean_nhs_number,
    clean_phone,
    clean_postcode,
    contactable,
    format_nhs_number,
    reachable,
    risk_described,
)
from referrals.text import has_control_characters, without_control_characters


def check_digit(nine: str) -> int:
    """Modulus 11, computed here independently of the library the service uses."""
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return 0 if check == 11 else check


@pytest.mark.parametrize("raw", ["9434765919", "943 476 5919", " 943-476-5919 ", "4010232137"])
def test_valid_nhs_numbers_are_normalised(raw):
    assert clean_nhs_number(raw) == raw.replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter the NHS number"),
        ("943476591", "10 digits"),
        ("94347659190", "10 digits"),
        ("94347659A9", "10 digits"),
        ("9434765918", "not a valid NHS number"),
        ("9434765910", "not a valid NHS number"),
    ],
)
def test_invalid_nhs_numbers_are_refused_with_a_reason(raw, message):
    with pytest.raises(InvalidValue, match=message):
        clean_nhs_number(raw)


# Numbers from 4 upwards (England, Wales, Isle of Man, synthetic): the check digit alone decides.
# The lower CHI range (Scotland) also needs a real date in its first six digits.
@given(st.from_regex(r"[4-9][0-9]{8}", fullmatch=True))
def test_nhs_check_digit_agrees_with_modulus_11(nine):
    check = check_digit(nine)
    if check == 10:
        for last in "0123456789":
            with pytest.raises(InvalidValue):
                clean_nhs_number(nine + last)
        return
    assert clean_nhs_number(nine + str(check)) == nine + str(check)
    wrong = (check + 1) % 10
    with pytest.raises(InvalidValue):
        clean_nhs_number(nine + str(wrong))


def test_nhs_numbers_display_three_three_four():
    assert format_nhs_number("9434765919") == "943 476 5919"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("gl1 2ab", "GL1 2AB"),
        ("SW1A1AA", "SW1A 1AA"),
        (" ec1a 1bb ", "EC1A 1BB"),
        ("m1 1ae", "M1 1AE"),
        ("GL50  3PR", "GL50 3PR"),
    ],
)
def test_postcodes_are_normalised(raw, clean):
    assert clean_postcode(raw) == clean


@pytest.mark.parametrize("raw", ["", "12345", "GL1", "Q1 1AA", "GL1 2CI", "GL1 2AB X"])
def test_malformed_postcodes_are_refused(raw):
    with pytest.raises(InvalidValue):
        clean_postcode(raw)


def test_date_of_birth_limits():
    today = date(2026, 11, 23)
    assert clean_date_of_birth(date(1948, 3, 15), today) == date(1948, 3, 15)
    assert clean_date_of_birth(today, today) == today
    with pytest.raises(InvalidValue, match="today or in the past"):
        clean_date_of_birth(date(2026, 11, 24), today)
    with pytest.raises(InvalidValue, match="120 years"):
        clean_date_of_birth(date(1906, 11, 22), today)
    assert clean_date_of_birth(date(1906, 11, 23), today)


def test_age_on_a_day():
    assert age_on(date(1948, 3, 15), date(2026, 3, 14)) == 77
    assert age_on(date(1948, 3, 15), date(2026, 3, 15)) == 78


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("01632 960 001", "01632960001"),
        ("+44 7700 900982", "07700900982"),
        ("(01632) 960001", "01632960001"),
    ],
)
def test_phone_numbers_are_normalised(raw, clean):
    assert clean_phone(raw) == clean


@pytest.mark.parametrize("raw", ["12345", "+1 555 0100", "0800", "phone me"])
def test_bad_phone_numbers_are_refused(raw):
    with pytest.raises(InvalidValue):
        clean_phone(raw)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15/3/1948", date(1948, 3, 15)),
        ("15 03 1948", date(1948, 3, 15)),
        ("1948-03-15", date(1948, 3, 15)),
        ("31/2/2000", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_uk_dates(text, expected):
    assert parse_uk_date(text) == expected


@pytest.mark.parametrize(
    ("text", "in_lines", "on_one_line"),
    [
        ("Singing", False, False),
        ("Sing\x01ing", True, True),
        ("Sing\x00", True, True),
        ("Sing\x7f", True, True),
        ("Sing\x85ing", True, True),  # C1 (NEL): never typed either
        ("Line one\r\nLine two\tend", False, True),
        ("Zoë – ok ☺", False, False),
    ],
)
def test_one_rule_says_which_text_holds_control_characters(
    text: str, in_lines: bool, on_one_line: bool
) -> None:
    assert has_control_characters(text) is in_lines
    assert has_control_characters(text, single_line=True) is on_one_line
    assert not has_control_characters(without_control_characters(text), single_line=True)


def test_a_person_needs_a_phone_number_or_an_email_address():
    assert contactable("01632960001", None) == {}
    assert contactable(None, "a@example.com") == {}
    assert contactable("", None) == {"phone": "Enter a phone number or an email address"}


@pytest.mark.parametrize(
    ("preferred", "phone", "email", "refused"),
    [
        ("phone", "01632960001", None, {}),
        ("text", "07700900982", None, {}),
        ("email", None, "a@example.com", {}),
        ("letter", None, None, {}),
        (None, None, None, {}),
        (
            "text",
            None,
            "a@example.com",
            {"preferred_contact": "Enter a phone number, or choose another way to contact them"},
        ),
        (
            "email",
            "01632960001",
            "",
            {"preferred_contact": "Enter an email address, or choose another way to contact them"},
        ),
    ],
)
def test_the_preferred_way_of_contact_needs_its_detail(preferred, phone, email, refused):
    assert reachable(preferred, phone, email) == refused


def test_a_flagged_risk_is_described():
    assert risk_described(False, "") == {}
    assert risk_described(True, "Lives alone") == {}
    assert risk_described(True, "   ") == {"risk_note": "Describe the concern or risk"}
