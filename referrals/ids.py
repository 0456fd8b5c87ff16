"""Ids typed into the address bar or a form: whole numbers a database column can hold."""

from __future__ import annotations

from typing import Any

MAX_ID = 2**31 - 1


def parse_id(value: Any) -> int | None:
    """The id, or None for anything else ("²", "-1", "", 2**40, …)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        number = int(value)
        return number if 0 < number <= MAX_ID else None
    return None
