"""The messages inbox, and the page a person reaches from an email to stop messages."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from referrals.audit import record
from referrals.extensions import db
from referrals.notifications.outbound import patient_for_stop_token, stop_messages
from referrals.notifications.services import (
    get_notification_or_404,
    inbox_query,
    mark_all_read,
    mark_read,
)
from referrals.pagination import Page
from referrals.security import STAFF, allow, public, safe_next_url

bp = Blueprint("notifications", __name__)


@bp.get("/")
@allow(STAFF)
def inbox() -> ResponseReturnValue:
    page = Page.from_request(inbox_query(current_user), per_page=25, scalars=False)
    return render_template("notifications/inbox.html", page=page)


@bp.post("/<int:notification_id>/open")
@allow(STAFF)
def open_message(notification_id: int) -> ResponseReturnValue:
    notification = get_notification_or_404(notification_id, current_user)
    mark_read(current_user, notification)
    db.session.commit()
    return redirect(safe_next_url(notification.link) or url_for("notifications.inbox"))


@bp.post("/read-all")
@allow(STAFF)
def read_all() -> ResponseReturnValue:
    count = mark_all_read(current_user)
    db.session.commit()
    flash(f"Marked {count} message{'s' if count != 1 else ''} as read", "success")
    return redirect(url_for("notifications.inbox", page=request.args.get("page", 1)))


@bp.route("/stop/<token>", methods=["GET", "POST"])
@public
def stop(token: str) -> ResponseReturnValue:
    """A person stops emails and texts from the service: the link in each email carries a
    signed token for their record (never a name or NHS number). GET asks; POST stops."""
    patient = patient_for_stop_token(token)
    if patient is None or patient.anonymised_at is not None:
        abort(404)
    stopped = False
    if request.method == "POST":
        if stop_messages(patient):
            record(None, "patient.messages_stopped", patient)
        db.session.commit()
        stopped = True
    return render_template("notifications/stop.html", token=token, stopped=stopped)
