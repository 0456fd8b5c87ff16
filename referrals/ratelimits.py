"""Request-rate limits, by Flask-Limiter: the sign-in steps, the other public pages, the API,
GOV.UK Notify's callbacks.

These bound how fast one client may ask, whatever the answer, so that no client can make the
service hash passwords (or answer the API) without end. They complement the sign-in throttle
(`auth.throttle`), which counts failures in the database. The counts live in Redis when
`RATELIMIT_STORAGE_URI` names it, shared by every worker; otherwise each worker counts in its
own memory, so with N workers a client gets up to N times the rate, which is still bounded.
If Redis stops answering, each worker falls back to its memory rather than refusing everyone.

Every limited page answers 429 with the service's own page, the API with problem+json; both
say when to try again (`Retry-After`). The health check and static files are not limited.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter, RateLimitExceeded

from referrals.api import bp as api_bp
from referrals.auth.throttle import client_address
from referrals.problems import problem
from referrals.security import ACCESS_ATTRIBUTE, PUBLIC, is_api_request

EXTENSION = "referrals.limiter"
SIGN_IN_STEPS = ("auth.login", "auth.login_code")
SELF_REFERRAL = "public.refer_yourself_page"
# Posted by GOV.UK Notify, a receipt for each message sent: limited apart from the pages.
NOTIFY_CALLBACKS = ("notifications.notify_received_text", "notifications.notify_delivery_receipt")
UNLIMITED = frozenset({"main.health", "static"})


def init_app(app: Flask) -> None:
    """Bind a limiter of this app's own to its views; call once the blueprints are registered.

    The limiter is made per app (not once per process in `extensions`) because Flask-Limiter
    keeps its storage and settings on the instance.
    """
    limiter = Limiter(
        key_func=client_address,
        strategy="fixed-window",
        in_memory_fallback_enabled=True,
        storage_options=_storage_options(app.config["RATELIMIT_STORAGE_URI"]),
    )
    limiter.init_app(app)
    app.extensions[EXTENSION] = limiter
    # Count before anything else runs: an API request with a made-up token is refused in
    # `security`'s before-request check, and must still count towards its address's limit.
    hooks = app.before_request_funcs.setdefault(None, [])
    ours = [hook for hook in hooks if getattr(hook, "__self__", None) is limiter]
    hooks[:] = ours + [hook for hook in hooks if hook not in ours]

    sign_in = limiter.shared_limit(_setting("RATELIMIT_SIGN_IN"), scope="sign-in", methods=["POST"])
    self_referral = limiter.limit(_setting("RATELIMIT_SELF_REFERRAL"), methods=["POST"])
    public = limiter.shared_limit(_setting("RATELIMIT_PUBLIC"), scope="public")
    callbacks = limiter.shared_limit(_setting("RATELIMIT_NOTIFY_CALLBACKS"), scope="callbacks")
    view: Callable[..., Any]
    for endpoint, view in list(app.view_functions.items()):
        if endpoint in NOTIFY_CALLBACKS:
            view = callbacks(view)
        elif endpoint not in UNLIMITED and getattr(view, ACCESS_ATTRIBUTE, None) == PUBLIC:
            view = public(view)
        if endpoint in SIGN_IN_STEPS:
            view = sign_in(view)
        if endpoint == SELF_REFERRAL:
            view = self_referral(view)
        app.view_functions[endpoint] = view
    limiter.limit(_setting("RATELIMIT_API_PER_CLIENT"), key_func=api_client_key)(api_bp)
    limiter.limit(_setting("RATELIMIT_API_PER_ADDRESS"), key_func=client_address)(api_bp)

    app.register_error_handler(RateLimitExceeded, too_many_requests)


def limiter_for(app: Flask) -> Limiter:
    limiter: Limiter = app.extensions[EXTENSION]
    return limiter


def _setting(name: str) -> Callable[[], str]:
    """The limit as a callable, so the app's configuration is read when a request comes."""
    return lambda: current_app.config[name]


def _storage_options(uri: str) -> dict[str, Any]:
    # A Redis that stops answering must not hold requests up for long.
    if uri.startswith(("redis", "rediss", "valkey")):
        return {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    return {}


def api_client_key() -> str:
    """The bearer token (by its digest, never in clear), or the client address without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "address:" + client_address()


def too_many_requests(error: RateLimitExceeded) -> ResponseReturnValue:
    wait = _seconds_to_wait()
    headers = {"Retry-After": str(wait)}
    if is_api_request():
        response = problem(429, detail=f"Too many requests. Try again in {wait} seconds")
        response.headers.update(headers)
        return response
    minutes = max(1, math.ceil(wait / 60))
    page = render_template("errors/429.html", minutes=minutes, status=429)
    return page, 429, headers


def _seconds_to_wait() -> int:
    current = limiter_for(current_app).current_limit
    if current is None:
        return 60
    return max(1, math.ceil(current.reset_at - time.time()))
