"""Course directory, matching and enrolment, my sessions, registers and wellbeing pages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from wtforms import RadioField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length

from referrals import clock
from referrals.admin.catalogue_forms import ClockTimeField
from referrals.auth.models import Role
from referrals.courses import bp
from referrals.courses.models import (
    ACTIVE_ENROLMENT,
    AttendanceStatus,
    Course,
    CourseSession,
    Enrolment,
    EnrolmentStatus,
    SessionStatus,
    Venue,
)
from referrals.courses.offline import register_version
from referrals.courses.queries import (
    DirectoryFilters,
    directory_query,
    my_sessions,
    register_counts,
    sessions_for_user,
)
from referrals.courses.register_rules import (
    MOOD_FIELDS,
    MoodUnreadable,
    RegisterEntry,
    parse_mood,
)
from referrals.courses.scope import (
    get_course_or_404,
    get_enrolment_or_404,
    get_register_session_or_404,
    scoped_enrolments,
    sees_contract_cost,
)
from referrals.courses.services import (
    REGISTER_EDIT_DAYS,
    CourseRuleBroken,
    RegisterRefused,
    accept_offer,
    attendance_counts,
    can_edit_register,
    cancel_session,
    course_days,
    course_places,
    decline_offer,
    enrol,
    enrolment_viewed,
    move_session,
    people_viewed,
    record_wellbeing,
    register_enrolments,
    save_register,
    sessions_left,
    waitlist_position,
    when_and_where,
    withdraw,
)
from referrals.extensions import db
from referrals.forms import Form, UKDateField
from referrals.ids import parse_id
from referrals.intake.lifecycle import Status
from referrals.intake.models import Referral
from referrals.intake.scope import get_referral_or_404
from referrals.outcomes.charts import questionnaire_chart, wellbeing_chart
from referrals.outcomes.queries import enrolment_wellbeing
from referrals.outcomes.scoring import Instrument, InvalidScores, Timepoint, item_labels
from referrals.outcomes.timepoints import timepoint_for
from referrals.pagination import Page
from referrals.security import STAFF, allow
from referrals.text import TEXT_MAX
from referrals.vocab import ArtForm, Pathway

MATCHING = (Role.LINK_WORKER, Role.ADMIN)
REGISTER_TAKERS = (Role.ARTIST, Role.ADMIN)
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


# Directory and matching ------------------------------------------------------------------


def _directory_filters() -> DirectoryFilters:
    args = request.args
    weekday = args.get("weekday", "")
    return DirectoryFilters(
        art_form=args.get("art_form")
        if args.get("art_form") in ArtForm._value2member_map_
        else None,
        pathway=args.get("pathway") if args.get("pathway") in Pathway._value2member_map_ else None,
        weekday=int(weekday) if weekday in {"0", "1", "2", "3", "4", "5", "6"} else None,
        area="".join(ch for ch in args.get("area", "")[:8] if ch.isalnum()),
        has_places=args.get("has_places") == "1" or None,
        include_finished=args.get("finished") == "1",
    )


@bp.get("/courses/")
@allow(STAFF)
def directory() -> ResponseReturnValue:
    filters = _directory_filters()
    referral = None
    referral_id = parse_id(request.args.get("referral", ""))
    if referral_id is not None and current_user.role in MATCHING:
        referral = get_referral_or_404(referral_id, current_user)
    page = Page.from_request(directory_query(current_user, filters, clock.today()), scalars=False)
    progress = sessions_left([row[0].id for row in page.items], clock.today())
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "courses/directory.html",
        page=page,
        filters=filters,
        referral=referral,
        ArtForm=ArtForm,
        Pathway=Pathway,
        weekdays=WEEKDAYS,
        query_args=args,
        progress=progress,
        today=clock.today(),
    )


# What a course's page shows of it, loaded with it (none as it renders).
COURSE_PAGE_LOADERS = (
    joinedload(Course.provider),
    joinedload(Course.venue),
    joinedload(Course.contract),
    selectinload(Course.lead_artists),
    selectinload(Course.sessions).joinedload(CourseSession.moved_venue),
)


@bp.get("/courses/<int:course_id>")
@allow(STAFF)
def course(course_id: int) -> ResponseReturnValue:
    item = get_course_or_404(course_id, current_user, *COURSE_PAGE_LOADERS)
    sees_people = current_user.role in MATCHING or current_user.role == Role.ARTIST
    enrolments: list[Enrolment] = []
    if sees_people:
        # Names through the viewer's scope; the counts below come from every enrolment.
        enrolments = list(
            db.session.scalars(
                scoped_enrolments(current_user)
                .where(Enrolment.course_id == item.id)
                .options(selectinload(Enrolment.referral).joinedload(Referral.patient))
                .order_by(Enrolment.waitlisted_at.is_(None), Enrolment.waitlisted_at, Enrolment.id)
            )
        )
    places = course_places(item)
    delivered, attended = attendance_counts(item.id)
    referral = None
    referral_id = parse_id(request.args.get("referral", ""))
    if referral_id is not None and current_user.role in MATCHING:
        referral = get_referral_or_404(referral_id, current_user)
    enrolled = [e for e in enrolments if e.status is EnrolmentStatus.ENROLLED]
    people_viewed(current_user, "course.people_viewed", enrolments, course_id=item.id)
    return render_template(
        "courses/course.html",
        course=item,
        referral=referral,
        delivered=delivered,
        attended=attended,
        enrolled=enrolled,
        completed=[e for e in enrolments if e.status is EnrolmentStatus.COMPLETED],
        waiting=[e for e in enrolments if e.status is EnrolmentStatus.WAITLISTED],
        sees_waiting_list=current_user.role in MATCHING,
        places=places,
        progress=sessions_left([item.id], clock.today())[item.id],
        sees_people=sees_people,
        sees_cost=sees_contract_cost(current_user),
        can_manage_sessions=current_user.role == Role.ADMIN
        or (current_user.role == Role.ARTIST and item.provider_id == current_user.organisation_id),
        today=clock.today(),
    )


@bp.post("/courses/<int:course_id>/enrol")
@allow(*MATCHING)
def enrol_referral(course_id: int) -> ResponseReturnValue:
    item = get_course_or_404(course_id, current_user)
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    referral_id = parse_id(request.form.get("referral_id", ""))
    if referral_id is None:
        abort(400)
    referral = get_referral_or_404(referral_id, current_user)
    try:
        enrolment = enrol(
            current_user,
            referral,
            item,
            today=clock.today(),
            late_start_confirmed=request.form.get("late_start_confirmed") == "1",
        )
    except CourseRuleBroken as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(url_for("courses.course", course_id=item.id, referral=referral.id))
    db.session.commit()
    if enrolment.status is EnrolmentStatus.WAITLISTED:
        flash(
            f"{item.title} is full. {referral.patient.full_name} is number "
            f"{waitlist_position(enrolment)} on its waiting list",
            "success",
        )
    else:
        flash(f"{referral.patient.full_name} is enrolled on {item.title}", "success")
    return redirect(url_for("intake.referral", referral_id=referral.id))


class WithdrawForm(Form):
    reason = TextAreaField(
        "Reason", validators=[DataRequired("Give a reason"), Length(max=TEXT_MAX)]
    )


@bp.route("/enrolments/<int:enrolment_id>/withdraw", methods=["GET", "POST"])
@allow(*MATCHING)
def withdraw_enrolment(enrolment_id: int) -> ResponseReturnValue:
    enrolment = get_enrolment_or_404(enrolment_id, current_user)
    form = WithdrawForm()
    if form.validate_on_submit():
        try:
            offered = withdraw(current_user, enrolment, form.reason.data or "", today=clock.today())
        except CourseRuleBroken as error:
            db.session.rollback()
            form.reason.errors = [str(error)]
        else:
            db.session.commit()
            flash(
                f"{enrolment.referral.patient.full_name} has been taken off "
                f"{enrolment.course.title}",
                "success",
            )
            if offered is not None:
                flash(
                    f"The place was offered to {offered.referral.patient.full_name}, "
                    "first on the waiting list",
                    "info",
                )
            return redirect(url_for("intake.referral", referral_id=enrolment.referral_id))
    enrolment_viewed(current_user, enrolment, via="withdraw")
    return render_template(
        "courses/withdraw.html", enrolment=enrolment, form=form, page_has_errors=bool(form.errors)
    )


@bp.post("/enrolments/<int:enrolment_id>/offer")
@allow(*MATCHING)
def answer_offer(enrolment_id: int) -> ResponseReturnValue:
    """A link worker accepts or declines a place offered from the waiting list, for the
    person."""
    enrolment = get_enrolment_or_404(enrolment_id, current_user)
    form = FlaskForm()
    answer = request.form.get("answer")
    if not form.validate_on_submit() or answer not in ("accept", "decline"):
        abort(400)
    name, title = enrolment.referral.patient.full_name, enrolment.course.title
    try:
        if answer == "accept":
            accept_offer(current_user, enrolment, today=clock.today())
            done = f"{name} has accepted the place on {title}"
        else:
            decline_offer(current_user, enrolment, today=clock.today())
            done = f"{name} has declined the place on {title}; it is offered to the next person"
    except CourseRuleBroken as error:
        db.session.rollback()
        flash(str(error), "error")
    else:
        db.session.commit()
        flash(done, "success")
    return redirect(url_for("courses.enrolment", enrolment_id=enrolment_id))


# Sessions and registers --------------------------------------------------------------------


@bp.get("/sessions/")
@allow(*REGISTER_TAKERS)
def sessions() -> ResponseReturnValue:
    day = clock.today()
    if current_user.role == Role.ADMIN:
        page = Page.from_request(
            sessions_for_user(current_user, day - timedelta(days=60), day + timedelta(days=60)),
            per_page=50,
        )
        return render_template("courses/all_sessions.html", page=page, today=day)
    groups = my_sessions(current_user, day)
    counts = register_counts([s.id for group in groups.values() for s in group])
    return render_template("courses/my_sessions.html", groups=groups, counts=counts, today=day)


# The session's course and venue and its marks so far, loaded with it (none as it renders).
REGISTER_PAGE_LOADERS = (
    joinedload(CourseSession.course).joinedload(Course.venue),
    selectinload(CourseSession.attendance),
)


MOOD_SCALE = range(11)
# A mood list's options with each value (or none) selected: the same twelve lists on every
# register, made once rather than 11 options drawn for each of 60 lists on every page.
_MOOD_OPTIONS = {
    chosen: Markup(  # noqa: S704  (digits of our own)
        "".join(
            f'<option value="{m}" {"selected" if str(m) == chosen else ""}>{m}</option>'
            for m in MOOD_SCALE
        )
    )
    for chosen in ("", *(str(m) for m in MOOD_SCALE))
}


def mood_options(value: object) -> Markup:
    """The 0 to 10 options with `value` selected, if it is one of them (as typed, on a form
    sent back with errors, it may be anything)."""
    return _MOOD_OPTIONS.get(str(value), _MOOD_OPTIONS[""])


def _register_rows(session: CourseSession) -> list[dict[str, Any]]:
    existing = {a.enrolment_id: a for a in session.attendance}
    enrolments = register_enrolments(session)
    days = course_days(enrolments)
    rows = []
    for enrolment in enrolments:
        mark = existing.get(enrolment.id)
        rows.append(
            {
                "enrolment": enrolment,
                "patient": enrolment.referral.patient,
                # The questionnaire this session calls for, if any (none mid-course).
                "timepoint": timepoint_for(session.date, days[enrolment.id]),
                "status": mark.status.value if mark else "",
                "mood_before": "" if mark is None or mark.mood_before is None else mark.mood_before,
                "mood_after": "" if mark is None or mark.mood_after is None else mark.mood_after,
                "note": mark.note if mark else "",
            }
        )
    return rows


def _entries_from_form(rows: list[dict[str, Any]]) -> tuple[list[RegisterEntry], dict[str, str]]:
    """Read each person's marks; return the entries and reading errors keyed by input name.

    Only reading is done here; the register rules are checked by the service, as for a CSV
    upload or the API.
    """
    entries, errors = [], {}
    form = request.form
    for row in rows:
        eid = row["enrolment"].id
        name = row["patient"].given_name
        status = form.get(f"status-{eid}", "")
        row["status"] = status if status in AttendanceStatus._value2member_map_ else ""
        moods: dict[str, int | None] = {}
        for key in MOOD_FIELDS:
            raw = form.get(f"{key}-{eid}", "")
            row[key] = raw.strip()
            try:
                moods[key] = parse_mood(raw)
            except MoodUnreadable as error:
                errors[f"{key}-{eid}"] = f"{error} ({name})"
                moods[key] = None
        row["note"] = form.get(f"note-{eid}", "")
        if not row["status"]:
            errors[f"status-{eid}"] = f"Choose attended, apologies or no show for {name}"
            continue
        entries.append(
            RegisterEntry(
                eid,
                AttendanceStatus(row["status"]),
                moods["mood_before"],
                moods["mood_after"],
                row["note"],
            )
        )
    return entries, errors


def _field_errors(
    refused: RegisterRefused, entries: list[RegisterEntry]
) -> tuple[dict[str, str], list[str]]:
    """The service's refusal shown at each person's fields, and what belongs to no field."""
    at_fields: dict[str, str] = {}
    general: list[str] = [str(refused)]
    for key, messages in refused.errors.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[1].isdigit() and int(parts[1]) < len(entries):
            field = "status" if parts[2] == "enrolment_id" else parts[2]
            at_fields[f"{field}-{entries[int(parts[1])].enrolment_id}"] = " ".join(messages)
        else:
            general += messages
    return at_fields, general


def _completion_message(names: list[str]) -> str:
    who = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (
        f"That was the last session: {who} completed the course. "
        "Their GP practices have been sent a message back."
    )


@bp.route("/sessions/<int:session_id>/register", methods=["GET", "POST"])
@allow(*REGISTER_TAKERS)
def register(session_id: int) -> ResponseReturnValue:
    session = get_register_session_or_404(session_id, current_user, *REGISTER_PAGE_LOADERS)
    day = clock.today()
    rows = _register_rows(session)
    editable = can_edit_register(current_user, session, day)
    form = FlaskForm()
    errors: dict[str, str] = {}
    general: list[str] = []
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        entries, errors = _entries_from_form(rows)
        if not errors:
            try:
                saved = save_register(current_user, session, entries, today=day)
            except RegisterRefused as error:
                db.session.rollback()
                errors, general = _field_errors(error, entries)
            else:
                db.session.commit()
                attended = sum(e.status is AttendanceStatus.ATTENDED for e in entries)
                flash(f"Register saved: {attended} of {len(entries)} attended", "success")
                if saved.completed:
                    flash(
                        _completion_message([e.referral.patient.full_name for e in saved.completed])
                    )
                return redirect(url_for("courses.sessions"))
    people_viewed(
        current_user, "register.viewed", [row["enrolment"] for row in rows], session_id=session.id
    )
    return render_template(
        "courses/register.html",
        session=session,
        rows=rows,
        errors=errors,
        general=general,
        editable=editable,
        form=form,
        statuses=list(AttendanceStatus),
        mood_options=mood_options,
        edit_days=REGISTER_EDIT_DAYS,
        page_has_errors=bool(errors or general),
        today=day,
        version=register_version(session),
    )


class CancelSessionForm(Form):
    reason = TextAreaField(
        "Why is it cancelled?",
        validators=[DataRequired("Give a reason for cancelling"), Length(max=TEXT_MAX)],
    )


@bp.route("/sessions/<int:session_id>/cancel", methods=["GET", "POST"])
@allow(*REGISTER_TAKERS)
def cancel(session_id: int) -> ResponseReturnValue:
    session = get_register_session_or_404(session_id, current_user)
    form = CancelSessionForm()
    if form.validate_on_submit():
        try:
            cancel_session(current_user, session, form.reason.data or "")
        except CourseRuleBroken as error:
            db.session.rollback()
            form.reason.errors = [str(error)]
        else:
            db.session.commit()
            flash(f"Session on {session.date:%-d %B} cancelled", "success")
            return redirect(url_for("courses.course", course_id=session.course_id))
    return render_template(
        "courses/cancel_session.html", session=session, form=form, page_has_errors=bool(form.errors)
    )


class MoveSessionForm(Form):
    new_date = UKDateField("Date", message="Enter a real date, for example 17 3 2026")
    new_time = ClockTimeField("Start time")
    venue = SelectField("Venue", coerce=parse_id, validate_choice=False)


@bp.route("/sessions/<int:session_id>/move", methods=["GET", "POST"])
@allow(*REGISTER_TAKERS)
def move(session_id: int) -> ResponseReturnValue:
    """Move a session to another day, start time or venue; each starts as it is now."""
    session = get_register_session_or_404(session_id, current_user)
    venues = {v.id: v for v in db.session.scalars(select(Venue).order_by(Venue.name))}
    form = MoveSessionForm(
        data={"new_date": session.date, "new_time": session.start_time, "venue": session.venue.id}
    )
    form.venue.choices = [SelectChoice(v.id, f"{v.name}, {v.postcode}") for v in venues.values()]
    if form.validate_on_submit():
        # A time or venue left out stays as it is.
        venue = venues.get(form.venue.data) if form.venue.data is not None else session.venue
        if form.new_date.data is None:
            form.new_date.errors = ["Enter the date, for example 17 3 2026"]
        elif venue is None:
            form.venue.errors = ["Select a venue from the list"]
        else:
            try:
                move_session(
                    current_user,
                    session,
                    form.new_date.data,
                    form.new_time.data,
                    today=clock.today(),
                    new_venue=venue,
                )
            except CourseRuleBroken as error:
                db.session.rollback()
                form.new_date.errors = [str(error)]
            else:
                db.session.commit()
                flash(f"Session moved to {when_and_where(session)}", "success")
                return redirect(url_for("courses.course", course_id=session.course_id))
    return render_template(
        "courses/move_session.html", session=session, form=form, page_has_errors=bool(form.errors)
    )


# Wellbeing ----------------------------------------------------------------------------


def _wellbeing_form(instrument: Instrument, labels: list[str]) -> FlaskForm:
    class WellbeingForm(Form):
        timepoint = RadioField(
            "When is this?",
            choices=[SelectChoice(t.value, t.label) for t in Timepoint],
            validators=[InputRequired("Choose when the questionnaire was answered")],
        )
        recorded_on = UKDateField("Date answered")

    for number, label in enumerate(labels, start=1):
        setattr(
            WellbeingForm,
            f"item_{number}",
            RadioField(
                label,
                choices=[SelectChoice(str(v), str(v)) for v in range(1, 6)],
                validators=[InputRequired(f"Choose an answer from 1 to 5 for item {number}")],
            ),
        )
    return WellbeingForm()


@bp.route("/enrolments/<int:enrolment_id>/wellbeing", methods=["GET", "POST"])
@allow(Role.ARTIST, Role.LINK_WORKER, Role.ADMIN)
def wellbeing(enrolment_id: int) -> ResponseReturnValue:
    enrolment = get_enrolment_or_404(enrolment_id, current_user)
    raw_instrument = request.values.get("instrument", Instrument.SWEMWBS.value)
    if raw_instrument not in Instrument._value2member_map_:
        raw_instrument = Instrument.SWEMWBS.value
    instrument = Instrument(raw_instrument)
    labels = item_labels(instrument, current_app.config.get("WELLBEING_ITEM_WORDING"))
    form: Any = _wellbeing_form(instrument, labels)
    mid_course = False
    if request.method == "GET":
        # From a register, the questionnaire is dated the session's day; the timepoint is the
        # one the course calls for on that day.
        session_id = parse_id(request.args.get("session", ""))
        at_session = db.session.get(CourseSession, session_id) if session_id else None
        on_register = at_session is not None and at_session.course_id == enrolment.course_id
        form.recorded_on.data = at_session.date if at_session and on_register else clock.today()
        timepoint = timepoint_for(form.recorded_on.data, course_days([enrolment])[enrolment.id])
        form.timepoint.data = timepoint.value if timepoint else None
        mid_course = timepoint is None
    if form.validate_on_submit():
        recorded_on = form.recorded_on.data or clock.today()
        items = [int(getattr(form, f"item_{n}").data) for n in range(1, len(labels) + 1)]
        try:
            assessment = record_wellbeing(
                current_user,
                enrolment,
                instrument,
                Timepoint(form.timepoint.data),
                items,
                recorded_on=recorded_on,
                today=clock.today(),
            )
        except InvalidScores as error:
            db.session.rollback()
            form.form_errors.extend(m for ms in error.errors.values() for m in ms)
        except CourseRuleBroken as error:
            db.session.rollback()
            field = form.timepoint if error.field == "timepoint" else form.recorded_on
            field.errors = [str(error)]
        else:
            db.session.commit()
            flash(f"{instrument.value} recorded: score {assessment.metric_score}", "success")
            return redirect(url_for("courses.enrolment", enrolment_id=enrolment.id))
    enrolment_viewed(current_user, enrolment, via="wellbeing")
    return render_template(
        "courses/wellbeing.html",
        enrolment=enrolment,
        form=form,
        instrument=instrument,
        instruments=list(Instrument),
        item_fields=[getattr(form, f"item_{n}") for n in range(1, len(labels) + 1)],
        mid_course=mid_course,
        page_has_errors=bool(form.errors),
    )


@bp.get("/enrolments/<int:enrolment_id>")
@allow(STAFF)
def enrolment(enrolment_id: int) -> ResponseReturnValue:
    """A person on a course: attendance, moods and wellbeing over time."""
    item = get_enrolment_or_404(enrolment_id, current_user)

    enrolment_viewed(current_user, item)
    history = enrolment_wellbeing(item)
    return render_template(
        "courses/enrolment.html",
        enrolment=item,
        history=history,
        chart=wellbeing_chart(history),
        scores_chart=questionnaire_chart(history),
        position=waitlist_position(item),
        can_withdraw=current_user.role in MATCHING and item.status in ACTIVE_ENROLMENT,
        can_answer_offer=current_user.role in MATCHING and item.status is EnrolmentStatus.OFFERED,
        can_record_wellbeing=current_user.role in (Role.ARTIST, Role.LINK_WORKER, Role.ADMIN),
        Status=Status,
        SessionStatus=SessionStatus,
    )
