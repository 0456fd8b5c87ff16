"""The NHS.UK header and footer: rendered by the frontend's macros once per process, then filled in.

The header macro is the costliest part of a page's template (about an eighth of a list page's
CPU), yet between requests it differs only in a few values. Each distinct shape (signed in or
not, the role, the navigation with its current item, where the service's name leads, whether
there are unread messages) is rendered once with placeholders for the person's name, the unread
count and the CSRF token, and kept for the process; a request fills in its own values, escaped as
the macro would escape them. The footer is the same for everyone and rendered once.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, render_template_string, request, url_for
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

# Letters and hyphens only, so escaping leaves them as they are.
_NAME = "app-chrome-placeholder-name"
_UNREAD = "app-chrome-placeholder-unread"
_TOKEN = "app-chrome-placeholder-token"  # noqa: S105  (a placeholder)
_CACHE = "referrals.chrome"
_PREVIOUS_HREF = "app-pager-placeholder-previous-href"
_PREVIOUS_LABEL = "app-pager-placeholder-previous-label"
_NEXT_HREF = "app-pager-placeholder-next-href"
_NEXT_LABEL = "app-pager-placeholder-next-label"
_PAGER = (
    '{% from "nhsuk/components/pagination/macro.jinja" import pagination %}'
    "{{ pagination({"
    '"previous": {"href": previous_href, "labelText": previous_label} if previous else undefined,'
    '"next": {"href": next_href, "labelText": next_label} if next else undefined'
    "}) }}"
)


def _kept(key: tuple[Any, ...], render: Any) -> str:
    """The HTML kept for `key` (with the service's name, which both show), rendered if new."""
    key = (*key, current_app.config["SERVICE_NAME"])
    kept: dict[tuple[Any, ...], str] = current_app.extensions.setdefault(_CACHE, {})
    html = kept.get(key)
    if html is None:
        html = kept[key] = str(render())
    return html


def header(navigation_items: list[dict[str, Any]], unread_count: int) -> Markup:
    """The page's header for whoever is asking (see the module's docstring)."""
    user = current_user._get_current_object()
    signed_in = bool(user.is_authenticated)
    service_home = (
        url_for("public.finder") if request.blueprint == "public" else url_for("main.home")
    )
    role = user.role if signed_in else None
    key = (
        "header",
        request.script_root,
        service_home,
        role,
        tuple((item["text"], item["href"], bool(item["current"])) for item in navigation_items),
        bool(unread_count) if signed_in else False,
    )
    html = _kept(
        key,
        lambda: render_template(
            "_chrome/header.html",
            signed_in=signed_in,
            name=_NAME,
            role_label=role.label if role is not None else "",
            unread=_UNREAD if unread_count else 0,
            token=_TOKEN,
            service_home=service_home,
            navigation_items=navigation_items,
        ),
    )
    if signed_in:
        html = html.replace(_TOKEN, generate_csrf()).replace(_UNREAD, str(int(unread_count)))
        html = html.replace(_NAME, str(escape(user.name)))  # last: nothing after it
    return Markup(html)  # noqa: S704  (rendered by the autoescaping template; values escaped)


def footer() -> Markup:
    html = _kept(("footer", request.script_root), lambda: render_template("_chrome/footer.html"))
    return Markup(html)  # noqa: S704  (rendered by the autoescaping template)


def pager(previous: tuple[str, str] | None, following: tuple[str, str] | None) -> Markup:
    """The frontend's previous and next links, each (address, label) or None: rendered by its
    macro once per shape (which of the two there are) and filled in, escaped, like the header."""
    key = ("pager", previous is not None, following is not None)
    html = _kept(
        key,
        lambda: render_template_string(
            _PAGER,
            previous=previous is not None,
            previous_href=_PREVIOUS_HREF,
            previous_label=_PREVIOUS_LABEL,
            next=following is not None,
            next_href=_NEXT_HREF,
            next_label=_NEXT_LABEL,
        ),
    )
    if previous is not None:
        html = html.replace(_PREVIOUS_HREF, str(escape(previous[0])))
        html = html.replace(_PREVIOUS_LABEL, str(escape(previous[1])))
    if following is not None:
        html = html.replace(_NEXT_HREF, str(escape(following[0])))
        html = html.replace(_NEXT_LABEL, str(escape(following[1])))
    return Markup(html)  # noqa: S704  (rendered by the autoescaping template; values escaped)
