"""The messages inbox, the pages a person reaches from a message (stop messages, answer a
place offered), and the two URLs GOV.UK Notify posts its callbacks to."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from referrals import clock
from referrals.courses.models import Enrolment, EnrolmentStatus
from referrals.courses.services import CourseRuleBroken, accept_offer, decline_offer
from referrals.extensions import csrf, db
from referrals.forms import Form, MultiCheckboxField
from referrals.notifications import bp
from referrals.notifications.callbacks import BadCallback, delivery_receipt, received_text
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

    enrolment_id = enrolment_id_for_offer_token(token)
    enrolment = db.session.get(Enrolment, enrolment_id) if enrolment_id is not None else None
    if enrolment is None or enrolment.referral.patient.anonymised_at is not None:
        abort(404)
    answered, problem = "", ""
    answer = request.form.get("answer")
    if request.method == "POST" and answer in ("accept", "decline"):
        try:
            if answer == "accept":
                accept_offer(None, enrolment, today=clock.today())
            else:
                decline_offer(None, enrolment, today=clock.today())
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
        stop_messages(patient, asked_by="email link")
        db.session.commit()
        stopped = True
    return render_template("notifications/stop.html", token=token, stopped=stopped)


# GOV.UK Notify's callbacks --------------------------------------------------------------


def _bearer_token_matches(expected: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # In constant time, so the answer's timing says nothing of the token.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


def _answer_notify(act: Callable[[Mapping[str, Any]], object]) -> ResponseReturnValue:
    """Check the bearer token Notify was given, act on its JSON, commit; 204 when done.

    Without NOTIFY_CALLBACK_TOKEN configured the URL is not there at all (404)."""
    expected = current_app.config.get("NOTIFY_CALLBACK_TOKEN")
    if not expected:
        abort(404)
    if not _bearer_token_matches(str(expected)):
        answer = jsonify(error="The bearer token set on Notify's Callbacks page is required")
        return answer, 401, {"WWW-Authenticate": "Bearer"}
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return jsonify(error="Send the callback's JSON object"), 400
    try:
        act(payload)
    except BadCallback as error:
        db.session.rollback()
        return jsonify(error=str(error)), 400
    db.session.commit()
    return "", 204


@bp.post("/notify/received-text")
@public
@csrf.exempt  # a machine posts here, authenticated by its bearer token, never by a cookie
def notify_received_text() -> ResponseReturnValue:
    """A text a person sent to the service's number: STOP stops their messages."""
    return _answer_notify(received_text)


@bp.post("/notify/delivery-receipt")
@public
@csrf.exempt  # as above
def notify_delivery_receipt() -> ResponseReturnValue:
    """Whether a message Notify was given reached the person."""
    return _answer_notify(delivery_receipt)
