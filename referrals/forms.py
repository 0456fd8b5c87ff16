"""Form fields shared by several areas."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask_wtf import FlaskForm
from wtforms import Field, SelectMultipleField, StringField
from wtforms.validators import StopValidation
from wtforms.widgets import CheckboxInput, ListWidget, TextInput

# The API reads the rule through here too; `referrals.text` is where it is written.
from referrals.text import CONTROL_CHARACTERS as CONTROL_CHARACTERS
from referrals.text import control_characters_refused, has_control_characters

_DATE_PARTS = re.compile(r"^\s*(\d{1,2})[\s/.-]+(\d{1,2})[\s/.-]+(\d{4})\s*$")
_ISO_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})\s*$")


def parse_uk_date(text: str) -> date | None:
    """`15/3/1948`, `15 03 1948`, `15-3-1948` or ISO `1948-03-15`; None if not a real date."""
    match = _DATE_PARTS.match(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
    else:
        iso = _ISO_DATE.match(text)
        if not iso:
            return None
        year, month, day = (int(g) for g in iso.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


class UKDateField(Field):
    """A date typed as day, month and year in one box, as people write it in the UK."""

    widget = TextInput()
    data: date | None

    def __init__(
        self,
        label: str | None = None,
        validators: Any = None,
        message: str = "Enter a real date, for example 15 3 1948",
        **kwargs: Any,
    ):
        super().__init__(label, validators, **kwargs)
        self.message = message
        self.raw_text = ""

    def _value(self) -> str:
        if self.raw_text:
            return self.raw_text
        return self.data.strftime("%d/%m/%Y") if isinstance(self.data, date) else ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        self.raw_text = (valuelist[0] if valuelist else "").strip()[:40]
        if not self.raw_text:
            self.data = None
            return
        self.data = parse_uk_date(self.raw_text)
        if self.data is None:
            raise ValueError(self.message)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class StrippedStringField(StringField):
    """Trims surrounding whitespace so "  " counts as empty."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        super().process_formdata(valuelist)
        value: Any = getattr(self, "data", None)
        if isinstance(value, str):
            self.data = value.strip()


class NoControlCharacters:
    """A field validator refusing control characters (`referrals.text`). It stops the field's
    other checks, so no later one (a uniqueness query) sees them: PostgreSQL refuses NUL. A
    one-line field refuses tabs and line breaks too; `multiline` text keeps them."""

    def __init__(self, message: str | None = None, *, multiline: bool = False) -> None:
        self.message, self.multiline = message, multiline

    def __call__(self, form: Any, field: Any) -> None:
        text = field.data
        if isinstance(text, str) and has_control_characters(text, single_line=not self.multiline):
            raise StopValidation(self.message or control_characters_refused(field.label.text))


# For one-line fields: names, email addresses, passwords, codes.
no_control_characters = NoControlCharacters()


class ConfirmForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class Form(FlaskForm):
    """A form whose text fields refuse control characters (never typed; PostgreSQL refuses NUL),
    text areas keeping their line breaks."""

    def validate(self, extra_validators: Any = None) -> bool:
        valid = bool(super().validate(extra_validators))
        for field in self:
            value = field.data
            texts = value if isinstance(value, list) else [value]
            if any(isinstance(t, str) and has_control_characters(t) for t in texts):
                field.errors = [*field.errors, control_characters_refused(field.label.text)]
                valid = False
        return valid
