"""The messages inbox, and the page a person reaches from an email to stop messages."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from referrals.audit import record
from referrals.extensions import db
from referrals.forms import Form, MultiCheckboxField
from referrals.notifications.outbound import (
    choose_emails,
    email_choices,
    enrolment_id_for_offer_token,
    patient_for_stop_token,
    stop_messages,
)
from referrals.notifications.services import (
    get_notification_or_404,
    inbox_query,
    mark_all_read,
    mark_read,
)
from referrals.notifications.wording import staff_kinds_for
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


class EmailChoicesForm(Form):
    wanted = MultiCheckboxField("Email me when")


@bp.route("/emails", methods=["GET", "POST"])
@allow(STAFF)
def email_choices_page() -> ResponseReturnValue:
    """Each member of staff chooses which emails they get; the rest still arrive in-app."""
    user = current_user._get_current_object()
    choices = email_choices(user)
    form = EmailChoicesForm(data={"wanted": [kind for kind, on in choices.items() if on]})
    form.wanted.choices = [(kind, text) for kind, text in staff_kinds_for(user.role).items()]
    if form.validate_on_submit():
        changed = choose_emails(user, form.wanted.data or [])
        db.session.commit()
        flash("Your email choices are saved" if changed else "Nothing changed", "success")
        return redirect(url_for("notifications.email_choices_page"))
    return render_template(
        "notifications/email_choices.html", form=form, page_has_errors=bool(form.errors)
    )


@bp.route("/offer/<token>", methods=["GET", "POST"])
@public
def offer(token: str) -> ResponseReturnValue:
    """A person offered a place from the waiting list accepts or declines it: the link in the
    email or text carries a signed token for the enrolment (never a name or NHS number). GET
    shows the offer; POST answers it."""
    from referrals.courses.models import Enrolment, EnrolmentStatus
    from referrals.courses.services import CourseRuleBroken, accept_offer, decline_offer
    from referrals.scheduler.jobs import today_in_london

    enrolment_id = enrolment_id_for_offer_token(token)
    enrolment = db.session.get(Enrolment, enrolment_id) if enrolment_id is not None else None
    if enrolment is None or enrolment.referral.patient.anonymised_at is not None:
        abort(404)
    answered, problem = "", ""
    answer = request.form.get("answer")
    if request.method == "POST" and answer in ("accept", "decline"):
        try:
            if answer == "accept":
                accept_offer(None, enrolment, today=today_in_london())
            else:
                decline_offer(None, enrolment, today=today_in_london())
        except CourseRuleBroken as error:
            db.session.rollback()
            problem = str(error)
        else:
            db.session.commit()
            answered = answer
    return render_template(
        "notifications/offer.html",
        token=token,
        enrolment=enrolment,
        open=enrolment.status is EnrolmentStatus.OFFERED,
        answered=answered,
        problem=problem,
    )


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
