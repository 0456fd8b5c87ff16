"""Logs for every process (web workers, the command line, the scheduler): JSON lines on stderr.

Each record is one JSON object with its time, level, logger, message and, inside a request, the
request id. The id is taken from a sane incoming `X-Request-ID` (so a proxy's id carries through)
or made here, and is echoed in the response header and on the 500 page, so a person's report of
an error leads to its log lines. gunicorn's access log goes through the same formatter
(`referrals.access_log`), with the path but never the query string. What the code logs stays free of
NHS numbers, names and dates of birth (tests/test_logs.py).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
# Letters, digits and - _ . only, 8 to 64 of them: enough for a UUID or a proxy's own ids, and
# nothing that could forge a log line or carry personal data in a sentence.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}
_HANDLER_NAME = "referrals-json"


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (or none, outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter(_FIELDS, rename_fields=_RENAMED, json_ensure_ascii=False)


class _StandardErrorHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str | int = "INFO") -> None:
    """Send every logger's records to stderr as JSON (idempotent: one handler, replaced)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StandardErrorHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)


def _assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex


def _echo_request_id(response: Response) -> Response:
    if "request_id" in g:
        response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def init_app(app: Flask) -> None:
    """Give every request an id (first of all the request hooks) and log as JSON.

    Tests keep their own log capture: the JSON handler is installed outside testing only.
    """
    if not app.testing:
        configure_logging(app.config.get("LOG_LEVEL", "INFO"))
    app.before_request_funcs.setdefault(None, []).insert(0, _assign_request_id)
    app.after_request(_echo_request_id)
