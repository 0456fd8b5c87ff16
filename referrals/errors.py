"""Error pages for people and problem+json (RFC 9457) for the API.

An error page never depends on the database: it is what a person sees when the database is the
thing that failed. A form that could not be saved comes back with what the person typed, ready
to send again, so an error never costs them their work.

A write that could not get the database's lock in time (another request, job or command held
it past SQLite's busy timeout or PostgreSQL's lock timeout) is not a fault: nothing was saved,
and the same request a moment later will very likely succeed. It answers 503 with Retry-After:
a page saying so with the form kept, or problem+json on the API. The handler is registered on
the application, so it covers the API's paths too.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, generate_csrf
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from referrals.db import is_lock_timeout, only_reads_from_now
from referrals.extensions import db, login_manager
from referrals.problems import problem
from referrals.security import is_api_request

log = logging.getLogger(__name__)

_PAGE_TEMPLATES = {403: "errors/403.html", 404: "errors/404.html", 500: "errors/500.html"}
# What a browser is shown when even the service's own error page cannot be rendered.
_LAST_RESORT_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    "<title>Sorry, there is a problem with the service</title></head><body>"
    "<h1>Sorry, there is a problem with the service</h1>"
    "<p>Go back and try again in a few minutes.</p>"
    '<p><a href="/">Go to the home page</a></p></body></html>'
)
# Form fields never sent back: the old token (a fresh one is issued) and what holds secrets.
_NOT_RESENT = frozenset({"csrf_token", "password", "current_password", "new_password", "code"})
# Seconds a client is asked to wait after the database was too busy to save its request.
RETRY_AFTER_BUSY = 5


def _allow_header(error: HTTPException) -> dict[str, str]:
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        return {"Allow": ", ".join(sorted(error.valid_methods))}
    return {}


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    original = getattr(error, "original_exception", None)
    if status == 500 and original is not None and is_lock_timeout(original):
        # Raised after the view, by an after-request hook's write.
        return handle_database_busy(original)
    headers = _allow_header(error)
    if is_api_request():
        response = problem(status, detail=error.description if status != 500 else None)
        response.headers.update(headers)
        return response
    template = _PAGE_TEMPLATES.get(status, "errors/generic.html")
    return render_template(template, error=error, status=status), status, headers


def handle_csrf_error(error: CSRFError) -> ResponseReturnValue:
    if is_api_request():
        return problem(400, detail=error.description)
    # Only a form sent from this site's own pages is offered back: a form posted from another
    # site must not become a page here with a ready-made "Send again" button.
    resend = _form_to_send_again() if _sent_from_this_site() else None
    return render_template("errors/csrf.html", status=400, resend=resend), 400


def handle_unexpected(error: Exception) -> ResponseReturnValue:
    # Nothing half-written survives a crash; the log records the type, never the request data.
    db.session.rollback()
    # The type and the stack only: an exception's message can quote the data it failed on.
    frames = "".join(traceback.format_tb(error.__traceback__))
    log.error("unhandled %s at %s\n%s", type(error).__name__, request.path, frames)
    if is_api_request():
        return problem(500)
    g.page_without_database = True
    if "_login_user" not in g:
        # The failure may have been loading the user: show the page as to a visitor.
        g._login_user = login_manager.anonymous_user()
    try:
        page = render_template(
            "errors/500.html", status=500, resend=_form_to_send_again(), error=InternalServerError()
        )
    except Exception:
        log.exception("the error page itself failed at %s", request.path)
        return _LAST_RESORT_PAGE, 500, {"Content-Type": "text/html; charset=utf-8"}
    return page, 500


def handle_database_error(error: DBAPIError) -> ResponseReturnValue:
    if is_lock_timeout(error):
        return handle_database_busy(error)
    return handle_unexpected(error)


def handle_database_busy(error: BaseException) -> ResponseReturnValue:
    """503 and Retry-After: nothing was saved (the transaction is rolled back), and the person
    gets back what they typed, ready to send again."""
    # The page's own reads (navigation, messages) must not queue for the lock again.
    only_reads_from_now(db.session)
    log.warning("database busy at %s %s: %s", request.method, request.path, type(error).__name__)
    headers = {"Retry-After": str(RETRY_AFTER_BUSY)}
    if is_api_request():
        response = problem(
            503,
            detail="The service is busy and nothing was saved. "
            f"Send the same request again in {RETRY_AFTER_BUSY} seconds",
        )
        response.headers.update(headers)
        return response
    # The form passed its CSRF check, so it came from this site's own page.
    resend = _form_to_send_again()
    try:
        page = render_template(
            "errors/try_again.html",
            status=503,
            resend=resend,
            typed=_typed(resend),
            seconds=RETRY_AFTER_BUSY,
        )
    except Exception:
        log.exception("the try-again page itself failed at %s", request.path)
        return _LAST_RESORT_PAGE, 503, {**headers, "Content-Type": "text/html; charset=utf-8"}
    return page, 503, headers


def _typed(resend: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What the person typed, as (field, value) to show them: the non-empty visible values."""
    if not resend:
        return []
    return [
        (name.replace("_", " ").capitalize(), value)
        for name, value in resend["fields"]
        if isinstance(value, str) and value.strip()
    ]


def _sent_from_this_site() -> bool:
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return origin.startswith(request.host_url.rstrip("/"))


def _form_to_send_again() -> dict[str, Any] | None:
    """The form a person sent, as fields for a page that sends it again with a fresh token."""
    if request.method != "POST" or request.mimetype not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return None
    fields = [
        (name, value)
        for name, values in request.form.lists()
        if name not in _NOT_RESENT
        for value in values
    ]
    try:
        token = generate_csrf()
    except Exception:  # no usable session: the person can still copy what they typed
        token = None
    return {
        "action": request.path,
        "fields": fields,
        "files": [name for name, upload in request.files.items(multi=True) if upload.filename],
        "csrf_token": token,
    }


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(DBAPIError, handle_database_error)
    app.register_error_handler(Exception, handle_unexpected)
