"""What text typed into the service may hold: one rule for forms, the API and register files.

Control characters are never typed by people; they arrive from pasted terminal output, broken
clients and attacks, and PostgreSQL refuses NUL in text outright. Unicode's control characters
(C0, DEL and C1) are refused everywhere, except that text written in lines (reasons, notes,
descriptions) keeps its tabs and line breaks. The lengths of text
every area takes are here too; the rest belong to each area's rules.
"""

from __future__ import annotations

# A text area: a reason, a note, a description (forms and the API alike).
TEXT_MAX = 4000
# An email address (RFC 5321's longest path), wherever one is typed or stored.
EMAIL_MAX = 254
# A search term typed into a list's search box.
SEARCH_MAX = 100

# What a text area keeps; a one-line field (a name, an email address, a password) refuses them.
LINE_BREAKS = frozenset("\t\n\r")
# Unicode category Cc: C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F).
_CC = frozenset(chr(code) for code in (*range(0x20), *range(0x7F, 0xA0)))
# What no text the service keeps may hold.
CONTROL_CHARACTERS = _CC - LINE_BREAKS


def has_control_characters(text: str, *, single_line: bool = False) -> bool:
    """Whether `text` holds a control character; tabs and line breaks count only in one-line
    text."""
    refused = _CC if single_line else CONTROL_CHARACTERS
    return not refused.isdisjoint(text)


def without_control_characters(text: str) -> str:
    """`text` with every control character removed (tabs and line breaks too): for search terms
    and filters read from the address bar, which are cleaned rather than refused."""
    return "".join(ch for ch in text if ch not in _CC)


def control_characters_refused(name: str) -> str:
    """What a person is told when `name` holds a control character."""
    return f"{name} must not contain control characters"
