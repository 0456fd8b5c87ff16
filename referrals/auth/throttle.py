"""The sign-in throttle: failed steps counted in the database, per account and client address.

Failures are counted for the pair (address typed, client address), so someone else's wrong
passwords never hold back the owner signing in from their own address; and per client
address over all accounts, so one client cannot spray passwords across many accounts. Wrong
two-step codes are also counted per account from any address: only someone who already has
the password can make them, and a code is short enough to guess from many addresses.

The counts live in the `login_attempt` table rather than in the rate limiter's storage
(`referrals.ratelimits`): the database is shared by every worker on every set-up, the default
SQLite one included, so the limits are exact however many workers run, and a throttled try is
refused before the password is hashed. The window slides: a refused client may try again as
soon as enough of its failures have aged out of it, and `Throttled.retry_after` says when.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app, request
from sqlalchemy import Select, func, select

from referrals.auth.models import FailedStep, LoginAttempt
from referrals.db import utcnow
from referrals.extensions import db


@dataclass(frozen=True)
class Throttled:
    """Why this try is refused without being checked, and how long until one may be."""

    retry_after: int  # seconds, at least 1

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


def throttled_message(throttled: Throttled) -> str:
    minutes = throttled.minutes
    plural = "s" if minutes != 1 else ""
    return f"Too many failed attempts. Wait {minutes} minute{plural}, then try again"


def retry_after(throttled: Throttled) -> dict[str, str]:
    """The header a throttled answer (429) carries."""
    return {"Retry-After": str(throttled.retry_after)}


def client_address() -> str:
    """The client's address as the service sees it (ProxyFix applies `PROXY_COUNT` first)."""
    return request.remote_addr or "unknown"


def record_failure(email: str, step: FailedStep = FailedStep.PASSWORD) -> None:
    """Count a failed password or code for the address typed, from this client."""
    db.session.add(LoginAttempt(email=email, ip_address=client_address(), step=step))


def check(email: str, *, step: FailedStep = FailedStep.PASSWORD) -> Throttled | None:
    """None if this client may try `email` now; otherwise how long it must wait.

    Every limit is checked before the password or code is, so a refused try costs no hash.
    """
    config = current_app.config
    address = client_address()
    from_here = LoginAttempt.ip_address == address
    limits: list[tuple[Select[Any], int]] = [
        (_failures(LoginAttempt.email == email, from_here), config["LOGIN_MAX_FAILURES"]),
        (_failures(from_here), config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
        (_accounts_tried(address), config["LOGIN_MAX_ACCOUNTS_PER_ADDRESS"]),
    ]
    if step is FailedStep.CODE:
        limits.append(
            (
                _failures(LoginAttempt.email == email, LoginAttempt.step == FailedStep.CODE),
                config["LOGIN_MAX_FAILURES"],
            )
        )
    waits = [wait for query, limit in limits if (wait := _wait(query, limit)) is not None]
    return Throttled(max(waits)) if waits else None


def _since() -> datetime:
    return utcnow() - current_app.config["LOGIN_FAILURE_WINDOW"]


def _failures(*conditions: object) -> Select[Any]:
    """The times of the failures matching `conditions` in the window, latest first."""
    return (
        select(LoginAttempt.at)
        .where(LoginAttempt.at > _since(), *conditions)  # type: ignore[arg-type]
        .order_by(LoginAttempt.at.desc())
    )


def _accounts_tried(address: str) -> Select[Any]:
    """For each address typed from this client in the window, its latest failure, latest first."""
    latest = func.max(LoginAttempt.at)
    return (
        select(latest)
        .where(LoginAttempt.at > _since(), LoginAttempt.ip_address == address)
        .group_by(LoginAttempt.email)
        .order_by(latest.desc())
    )


def _wait(query: Select[Any], limit: int) -> int | None:
    """Seconds until fewer than `limit` of the times `query` finds are in the window.

    The `limit`-th latest time is the one that must age out of the window first.
    """
    times = db.session.scalars(query.limit(limit)).all()
    if len(times) < limit:
        return None
    frees_at = times[-1] + current_app.config["LOGIN_FAILURE_WINDOW"]
    return max(1, math.ceil((frees_at - utcnow()).total_seconds()))
