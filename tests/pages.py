"""What tests check on pages and in the database after a form is sent: the error at a field, the
value kept in a field, labelled controls with no inline code, rows and audit events stored."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from sqlalchemy import func, select

from referrals.audit import AuditEvent
from referrals.extensions import db


def count(model: Any, *where: Any) -> int:
    """How many rows of `model` (matching `where`) are stored."""
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def audit_events(action: str, object_id: Any = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action)
    if object_id is not None:
        query = query.where(AuditEvent.object_id == str(object_id))
    return list(db.session.scalars(query))


def assert_field_error(response: Any, field_id: str, message: str) -> str:
    """The message is shown at the field and in the summary at the top, linking to the field."""
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>Error: " in page
    assert "There is a problem" in page
    assert f'href="#{field_id}"' in page, field_id
    escaped = re.escape(message).replace("'", "(?:'|&#39;)").replace("£", "(?:£|&pound;)")
    assert re.search(
        r'class="nhsuk-error-message"[^>]*>\s*<span[^>]*>Error: </span>[^<]*' + escaped, page
    ), message
    return page


def value_kept(page: str, field_id: str, value: str) -> bool:
    """The input still holds what the user typed."""
    return bool(re.search(rf'id="{field_id}"[^>]*value="{re.escape(value)}"', page)) or bool(
        re.search(rf'value="{re.escape(value)}"[^>]*id="{field_id}"', page)
    )


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labels: set[str] = set()
        self.controls: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append(tag)
        if tag == "style" or (tag == "script" and not ({"src", "nonce"} & attributes.keys())):
            self.inline.append(tag)
        if tag == "label" and attributes.get("for"):
            self.labels.add(attributes["for"] or "")
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.controls.append(attributes.get("id") or "")


def assert_labelled_without_inline_code(page: str, url: str) -> None:
    """Every visible control has a label, and there is no inline style or script (the CSP
    forbids them)."""
    markup = _Markup()
    markup.feed(page)
    assert not markup.inline, (url, markup.inline)
    unlabelled = [c for c in markup.controls if c not in markup.labels]
    assert not unlabelled, (url, unlabelled)
