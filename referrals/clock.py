"""The service's one clock: what day and time it is where the scheme runs.

Every page, API operation, command and job asks here, so "today" cannot differ between two
ways in. The zone is the configured `TIMEZONE` (Europe/London by default); outside a request or
application context the default zone is used. Pure rules take `today` as an argument instead.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_TIMEZONE = "Europe/London"
# The scheme's zone when no application is configured (commands run outside the app, tests).
LONDON = ZoneInfo(DEFAULT_TIMEZONE)


@lru_cache(maxsize=8)
def _zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone() -> ZoneInfo:
    """The configured time zone of the scheme."""
    if has_app_context():
        return _zone_named(current_app.config.get("TIMEZONE") or DEFAULT_TIMEZONE)
    return LONDON


def now() -> datetime:
    """The aware local date and time in the scheme's zone."""
    return datetime.now(zone())


def today() -> date:
    """Today's date in the scheme's zone (not the server's, which may run on UTC)."""
    return now().date()
