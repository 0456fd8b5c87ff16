"""Error pages for people and problem+json (RFC 9457) for the API.

An error page never depends on the database: it is what a person sees when the database is the
thing that failed. A form that could not be saved comes back with what the person typed, ready
to send again, so an error never costs them their work.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from referrals.api.problems import problem
from referrals.extensions import db, login_manager
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


def _allow_header(error: HTTPException) -> dict[str, str]:
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        return {"Allow": ", ".join(sorted(error.valid_methods))}
    return {}


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
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
    app.register_error_handler(Exception, handle_unexpected)
