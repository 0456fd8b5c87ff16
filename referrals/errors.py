"""Error pages for people and problem+json (RFC 9457) for the API."""

from __future__ import annotations

import logging
import traceback

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from referrals.api.problems import problem
from referrals.extensions import db
from referrals.security import is_api_request

log = logging.getLogger(__name__)

_PAGE_TEMPLATES = {403: "errors/403.html", 404: "errors/404.html", 500: "errors/500.html"}


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    if is_api_request():
        return problem(status, detail=error.description if status != 500 else None)
    template = _PAGE_TEMPLATES.get(status, "errors/generic.html")
    return render_template(template, error=error, status=status), status


def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    if is_api_request():
        return problem(400, detail=error.description)
    return render_template("errors/csrf.html", status=400), 400


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    # Nothing half-written survives a crash; the log records the type, never the request data.
    db.session.rollback()
    # The type and the stack only: an exception's message can quote the data it failed on.
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error("unhandled %s at %s\n%s", type(error).__name__, request.path, frames)
    return handle_http_error(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
