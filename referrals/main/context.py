"""Template context: role-based navigation, the unread message count, date and phone filters."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any

import phonenumbers
from flask import Flask, current_app, g, request, url_for
from flask_login import current_user

from referrals import chrome, clock
from referrals.auth.models import Role
from referrals.auth.sessions import UNREAD_AT_START
from referrals.notifications.services import unread_count

ADMINS = frozenset({Role.ADMIN})
READERS_OF_RETURNS = frozenset({Role.COMMISSIONER, Role.ADMIN})

# (label, endpoint, roles): the whole menu, in its order, written here once. Nothing adds to
# it when a module is imported, so the menu cannot depend on which modules were loaded first.
NAVIGATION: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("Home", "main.home", frozenset(Role)),
    ("Caseload", "intake.referrals", frozenset({Role.LINK_WORKER, Role.ADMIN})),
    ("Referrals", "intake.referrals", frozenset({Role.REFERRER})),
    ("Refer someone", "intake.new_referral", frozenset({Role.REFERRER})),
    ("Courses", "courses.directory", frozenset({Role.LINK_WORKER, Role.REFERRER, Role.ARTIST})),
    ("My sessions", "courses.sessions", frozenset({Role.ARTIST})),
    ("Directory", "courses.directory", ADMINS),
    ("Sessions", "courses.sessions", ADMINS),
    ("Courses", "admin.courses", ADMINS),
    ("Contracts", "admin.contracts", ADMINS),
    ("Organisations", "admin.organisations", ADMINS),
    ("Users", "admin.users", ADMINS),
    ("Security", "admin.security", ADMINS),
    ("Audit log", "admin.audit_log", ADMINS),
    ("Jobs", "admin.jobs", ADMINS),
    ("Outbound messages", "admin.outbound_messages", ADMINS),
    ("Public profile", "providers.own_profile", frozenset({Role.ARTIST})),
    ("Returns", "reports.dashboard", READERS_OF_RETURNS),
)


_LINKS = "referrals.navigation"


def _links(role: Role) -> tuple[str, list[tuple[str, str]]]:
    """The home page's address and a role's (label, address) links, built once per process
    (per role and mount point) rather than on every page."""
    key = (role, request.script_root, len(NAVIGATION))
    kept: dict[Any, tuple[str, list[tuple[str, str]]]] = current_app.extensions.setdefault(
        _LINKS, {}
    )
    links = kept.get(key)
    if links is None:
        links = kept[key] = (
            url_for("main.home"),
            [(label, url_for(endpoint)) for label, endpoint, roles in NAVIGATION if role in roles],
        )
    return links


def navigation_items(user: Any = None) -> list[dict[str, Any]]:
    if user is None:
        user = current_user._get_current_object()
    if not user.is_authenticated:
        return []
    home, links = _links(user.role)
    path = request.path
    return [
        {
            "text": label,
            "href": href,
            "current": path == href or (href != home and path.startswith(href)),
        }
        for label, href in links
    ]


def _inject() -> dict[str, Any]:
    user = current_user._get_current_object()
    authenticated = user.is_authenticated
    if g.get("page_without_database"):
        authenticated = False  # an error page: the database may be what failed
    return {
        "navigation_items": navigation_items(user),
        "unread_message_count": _unread_count() if authenticated else 0,
        "Role": Role,
    }


def _unread_count() -> int:
    """As the request's identity query found it, on a page that changes nothing; counted
    afresh after a request that may have sent or read a message."""
    if request.method in ("GET", "HEAD") and UNREAD_AT_START in g:
        return int(g.get(UNREAD_AT_START) or 0)
    return unread_count(current_user)


def local_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(clock.zone()).strftime("%-d %b %Y, %H:%M")


def local_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(clock.zone()).date()
    return value.strftime("%-d %b %Y")


def _parsed_uk_phone(value: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(value, "GB")
    except phonenumbers.NumberParseException:
        return None


# Parsing a number is the costliest part of showing it (a register shows 30); the same few
# numbers are shown again and again, so each is parsed once per process. Plain str in and
# out, so a cached answer is escaped like any other.
@lru_cache(maxsize=4096)
def phone_display(value: str | None) -> str:
    """A stored phone number (digits only) grouped as people read it: 01632 960001,
    020 7946 0000, 07700 900982."""
    if not value:
        return ""
    number = _parsed_uk_phone(value)
    if number is None:
        return str(value)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


@lru_cache(maxsize=4096)
def phone_link(value: str | None) -> str:
    """The tel: address of a stored phone number, international so it dials from anywhere."""
    number = _parsed_uk_phone(value or "")
    if number is None:
        return f"tel:{value or ''}"
    return "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def init_app(app: Flask) -> None:
    app.context_processor(_inject)
    app.jinja_env.globals["chrome_header"] = chrome.header
    app.jinja_env.globals["chrome_footer"] = chrome.footer
    app.jinja_env.globals["chrome_pager"] = chrome.pager
    app.add_template_filter(local_datetime, "local_datetime")
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(phone_display, "phone")
    app.add_template_filter(phone_link, "tel")
