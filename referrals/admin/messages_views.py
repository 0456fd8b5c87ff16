"""Admin pages of outbound email and text messages: every message with its status, and a
preview of each kind's wording. Admins only. Registered on the admin blueprint."""

from __future__ import annotations

from flask import abort, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from referrals.admin import bp
from referrals.auth.models import Role
from referrals.notifications.models import MessageStatus, OutboundMessage
from referrals.notifications.outbound import backend_name
from referrals.notifications.wording import KINDS, preview
from referrals.pagination import Page
from referrals.security import allow


@bp.get("/messages")
@allow(Role.ADMIN)
def outbound_messages() -> ResponseReturnValue:
    status = request.args.get("status", "")
    query = select(OutboundMessage).order_by(
        OutboundMessage.created_at.desc(), OutboundMessage.id.desc()
    )
    if status in {s.value for s in MessageStatus}:
        query = query.where(OutboundMessage.status == MessageStatus(status))
    else:
        status = ""
    return render_template(
        "admin/outbound_messages.html",
        page=Page.from_request(query, per_page=50),
        status=status,
        statuses=list(MessageStatus),
        backend=backend_name(),
        kinds=KINDS,
    )


@bp.get("/messages/preview/<kind>")
@allow(Role.ADMIN)
def preview_message(kind: str) -> ResponseReturnValue:
    if kind not in KINDS:
        abort(404)
    return render_template("admin/message_preview.html", kind=kind, wording=preview(kind))
