"""Deny by default: every endpoint declares who may use it, or nobody can.

`@public` marks the short allowlist (sign-in, health, static). Every other view must carry
`@allow(roles...)`; a view without a rule is refused for everyone, so a forgotten decorator
fails closed. The check runs in `before_request`, so it also covers OPTIONS and HEAD.
`@second_sign_in_step` marks the code step of sign-in, open only to a browser that has just
given a right password. A second check keeps a user whose role requires two-step verification
on its set-up pages until they have set it up.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import Forbidden, NotFound, Unauthorized
from werkzeug.routing import IntegerConverter

from referrals.audit import record_now
from referrals.auth.bearer import authenticate_bearer
from referrals.auth.mfa import challenge_is_open, enrolment_due
from referrals.auth.models import Role
from referrals.auth.sessions import refresh_last_seen
from referrals.extensions import db
from referrals.ids import MAX_ID
from referrals.text import has_control_characters

F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = frozenset(Role)
STAFF = ALL_ROLES  # every signed-in role
ACCESS_ATTRIBUTE = "access_roles"
PUBLIC = "public"
SECOND_STEP = "second_step"
# While a role's required two-step verification is not set up, only these (and public pages).
MFA_SETUP_ENDPOINTS = frozenset(
    {"auth.mfa_page", "auth.mfa_start", "auth.mfa_confirm", "auth.logout"}
)


def public(view: F) -> F:
    setattr(view, ACCESS_ATTRIBUTE, PUBLIC)
    return view


def second_sign_in_step(view: F) -> F:
    """The code step of sign-in: only for a browser that has just given a right password."""
    setattr(view, ACCESS_ATTRIBUTE, SECOND_STEP)
    return view


def allow(*roles: Role | frozenset[Role]) -> Callable[[F], F]:
    """Allow the listed roles (or `STAFF`) to use a view; everyone else gets 403."""
    allowed = frozenset(
        r for item in roles for r in (item if isinstance(item, frozenset) else {item})
    )

    def decorate(view: F) -> F:
        setattr(view, ACCESS_ATTRIBUTE, allowed)
        return view

    return decorate


def access_rule(endpoint: str | None) -> Any:
    view = current_app.view_functions.get(endpoint or "")
    if view is None:
        return None
    return getattr(view, ACCESS_ATTRIBUTE, None)


def is_api_request() -> bool:
    """JSON answers, errors included: the API and the open Open Referral feed."""
    return request.blueprint in ("api", "openreferral") or request.path.startswith(
        ("/api/", "/openreferral/")
    )


def enforce_access() -> ResponseReturnValue | None:
    if request.endpoint is None:
        return None  # no route: the 404 handler answers
    rule = access_rule(request.endpoint)
    if rule == PUBLIC:
        return None
    if rule == SECOND_STEP:
        return None if challenge_is_open() else redirect(url_for("auth.login"))
    if is_api_request():
        if authenticate_bearer() is None:
            raise Unauthorized("A valid bearer token is required")
    elif not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not isinstance(rule, frozenset) or current_user.role not in rule:
        refuse_access("role")
    return None


def require_mfa_enrolment() -> ResponseReturnValue | None:
    """Runs after `enforce_access`: a user whose role requires two-step verification and who
    has not set it up may only set it up or sign out (public pages and static files stay)."""
    endpoint = request.endpoint
    if (
        endpoint is None
        or endpoint in MFA_SETUP_ENDPOINTS
        or access_rule(endpoint) in (PUBLIC, SECOND_STEP)
        or is_api_request()
    ):
        return None
    if not current_user.is_authenticated or not enrolment_due(current_user):
        return None
    if request.method == "GET":
        flash("Your role needs two-step verification. Set it up to continue", "info")
    return redirect(url_for("auth.mfa_page"))


def keep_session_alive() -> None:
    """Pages only: the API authenticates by bearer token and never reads the session cookie."""
    if not is_api_request():
        refresh_last_seen()


def refuse_access(reason: str) -> None:
    """Record the refusal and answer 403.

    `record_now`: on a GET the entry is written by a short transaction that starts with its
    write (a read that turned into a write would fail at once on SQLite if another request had
    written in between); a writing request already holds the lock, and commits it here.
    """
    record_now(
        current_user,
        "access.refused",
        object_type="endpoint",
        object_id=request.endpoint,
        path=request.path[:200],
        method=request.method,
        reason=reason,
    )
    db.session.commit()
    raise Forbidden()


def safe_next_url(target: str | None) -> str | None:
    """Accept only a local absolute path; anything that could leave the site is dropped."""
    if not target or len(target) > 2000:
        return None
    if "\\" in target or has_control_characters(target, single_line=True):
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def csp_nonce() -> str:
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def set_security_headers(response: Any) -> Any:
    headers = response.headers
    nonce = g.get("csp_nonce")
    script_src = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    headers["Content-Security-Policy"] = (
        "default-src 'self'; "
        f"script-src {script_src}; "
        "style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if g.get("public_cache_seconds") and response.status_code in (200, 304):
        # The open directory feed: the same for everyone, never about a person.
        headers["Cache-Control"] = f"public, max-age={g.public_cache_seconds}"
    elif request.endpoint != "static":
        # Pages and downloads may hold patient data: never keep them in a cache.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


class BoundedIntConverter(IntegerConverter):
    """`<int:id>` whose values beyond what a database column holds are a 404, whatever the method.

    Without it an id like 99999999999999999999 reaches the database and fails there.
    """

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        if number > MAX_ID:
            raise NotFound()
        return number


def init_app(app: Flask) -> None:
    # Static files (the NHS.UK styles, scripts and icons) carry no data and are needed to sign in.
    if "static" in app.view_functions:
        public(app.view_functions["static"])
    app.before_request(keep_session_alive)
    app.before_request(enforce_access)
    app.before_request(require_mfa_enrolment)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
