"""Sending built files, and making CSV cells safe to open in a spreadsheet."""

from __future__ import annotations

import io
from typing import Any

from flask import Response, send_file

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Neutralise a cell a spreadsheet would run as a formula (CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def send_bytes(content: bytes, filename: str, mimetype: str) -> Response:
    """A built file as a download that is never cached.

    `mimetype` is the whole Content-Type, charset included where it has one: send_file would
    append a second charset to a text type that already names one. The server sets `Date`
    (send_file's own would make two under gunicorn).
    """
    response = send_file(
        io.BytesIO(content),
        mimetype=mimetype,
        as_attachment=True,
        download_name=filename,
        max_age=0,
    )
    response.headers["Content-Type"] = mimetype
    response.headers["Cache-Control"] = "no-store"
    del response.headers["Date"]
    return response
