"""Admin pages for the catalogue: contracts and their KPI targets, venues and courses. Admins only.

Registered on the admin blueprint. Views load the object, validate a form, call one service from
`referrals.courses.services` and commit once; a rule the service refuses is shown at its field
and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import Select, func, select

from referrals import clock
from referrals.admin import bp
from referrals.admin.catalogue_forms import (
    ContractForm,
    CourseChoices,
    CourseFilterForm,
    CourseForm,
    NewCourseForm,
    VenueForm,
    commissioner_choices,
    contract_form_data,
    course_form_data,
    show_errors,
    stored_schedule,
)
from referrals.admin.views import PER_PAGE, _form_page
from referrals.admin.views import _saved as save_or_show_clash
from referrals.auth.models import Organisation, Role
from referrals.courses.kpi_targets import SPAN_LABELS, TARGETABLE_KPIS
from referrals.courses.models import Contract, Course, CourseSession, Venue
from referrals.courses.schedule import InvalidSchedule, describe
from referrals.courses.services import (
    CourseRuleBroken,
    create_course,
    create_venue,
    save_contract,
    save_venue,
    update_course,
)
from referrals.dates import format_date
from referrals.extensions import db
from referrals.pagination import Page
from referrals.security import allow


def _saved(form: Any, change: Callable[[], object]) -> bool:
    """As the other admin pages, and a rule the course services refuse is shown at its field."""
    try:
        return save_or_show_clash(form, change)
    except CourseRuleBroken as error:
        db.session.rollback()
        show_errors(form, {error.field or "": [str(error)]})
    except InvalidSchedule as error:
        db.session.rollback()
        show_errors(form, error.errors)
    return False


def _get_or_404(model: type[Any], object_id: int) -> Any:
    found = db.session.get(model, object_id)
    if found is None:
        abort(404)
    return found


# Contracts -----------------------------------------------------------------------------------


def contracts_query() -> Select:
    """Contracts by start date, newest first, with commissioner and number of courses."""
    courses = (
        select(func.count(Course.id))
        .where(Course.contract_id == Contract.id)
        .correlate(Contract)
        .scalar_subquery()
    )
    return (
        select(Contract, Organisation, courses.label("courses"))
        .join(Organisation, Contract.commissioner_id == Organisation.id)
        .order_by(Contract.start_date.desc(), func.lower(Contract.name), Contract.id)
    )


@bp.get("/contracts")
@allow(Role.ADMIN)
def contracts() -> ResponseReturnValue:
    page = Page.from_request(contracts_query(), per_page=PER_PAGE, scalars=False)
    return render_template("admin/catalogue/contracts.html", page=page)


def _contract_page(form: ContractForm, contract: Contract | None) -> ResponseReturnValue:
    targets = [
        (kpi, span, SPAN_LABELS[span], form.target_fields(kpi, span))
        for kpi in TARGETABLE_KPIS
        for span in kpi.spans
    ]
    return _form_page(
        "admin/catalogue/contract_form.html", form, contract=contract, targets=targets
    )


@bp.route("/contracts/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def new_contract() -> ResponseReturnValue:
    form = ContractForm(commissioners=commissioner_choices(), today=clock.today())
    if form.validate_on_submit() and _saved(
        form, lambda: save_contract(current_user, form.contract_fields(), today=clock.today())
    ):
        flash(f"{form.name.data} has been added", "success")
        return redirect(url_for("admin.contracts"))
    return _contract_page(form, None)


@bp.route("/contracts/<int:contract_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit_contract(contract_id: int) -> ResponseReturnValue:
    contract: Contract = _get_or_404(Contract, contract_id)
    # On POST the form holds exactly what was sent: a blank target clears it.
    form = ContractForm(
        data=contract_form_data(contract) if request.method == "GET" else None,
        commissioners=commissioner_choices(include=contract.commissioner),
        contract=contract,
        today=clock.today(),
    )
    if form.validate_on_submit() and _saved(
        form,
        lambda: save_contract(current_user, form.contract_fields(), contract, today=clock.today()),
    ):
        flash(f"{contract.name} has been updated", "success")
        return redirect(url_for("admin.contracts"))
    return _contract_page(form, contract)


# Venues --------------------------------------------------------------------------------------


@bp.get("/venues")
@allow(Role.ADMIN)
def venues() -> ResponseReturnValue:
    query = select(Venue).order_by(func.lower(Venue.name), Venue.id)
    page = Page.from_request(query, per_page=PER_PAGE)
    return render_template("admin/catalogue/venues.html", page=page)


@bp.route("/venues/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def new_venue() -> ResponseReturnValue:
    form = VenueForm()
    if form.validate_on_submit() and _saved(
        form, lambda: create_venue(current_user, form.venue_fields())
    ):
        flash(f"{form.name.data} has been added", "success")
        return redirect(url_for("admin.venues"))
    return _form_page("admin/catalogue/venue_form.html", form, venue=None)


@bp.route("/venues/<int:venue_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit_venue(venue_id: int) -> ResponseReturnValue:
    venue: Venue = _get_or_404(Venue, venue_id)
    form = VenueForm(obj=venue if request.method == "GET" else None)
    if form.validate_on_submit() and _saved(
        form, lambda: save_venue(current_user, form.venue_fields(), venue)
    ):
        flash(f"{venue.name} has been updated", "success")
        return redirect(url_for("admin.venues"))
    return _form_page("admin/catalogue/venue_form.html", form, venue=venue)


# Courses -------------------------------------------------------------------------------------


def courses_query(filters: CourseFilterForm) -> Select:
    """Courses by start date, newest first, with provider and contract (one query, no N+1)."""
    query = (
        select(Course, Organisation, Contract)
        .join(Organisation, Course.provider_id == Organisation.id)
        .join(Contract, Course.contract_id == Contract.id)
        .order_by(Course.start_date.desc(), func.lower(Course.title), Course.id)
    )
    if filters.contract_id is not None:
        query = query.where(Course.contract_id == filters.contract_id)
    return query


@bp.get("/courses")
@allow(Role.ADMIN)
def courses() -> ResponseReturnValue:
    contracts = db.session.execute(
        select(Contract.id, Contract.name).order_by(func.lower(Contract.name), Contract.id)
    )
    filters = CourseFilterForm(request.args, contracts=contracts)
    page = Page.from_request(courses_query(filters), per_page=PER_PAGE, scalars=False)
    return render_template("admin/catalogue/courses.html", page=page, filters=filters)


@bp.route("/courses/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def new_course() -> ResponseReturnValue:
    form = NewCourseForm(choices=CourseChoices.load())
    if form.validate_on_submit():
        schedule = form.schedule()
        if _saved(form, lambda: create_course(current_user, form.course_fields(schedule))):
            sessions = schedule.taster_sessions + schedule.sessions
            flash(
                f"{form.title.data} has been added with {sessions} "
                f"session{'s' if sessions != 1 else ''} from {format_date(schedule.start_date)}",
                "success",
            )
            return redirect(url_for("admin.courses"))
    return _form_page("admin/catalogue/course_form.html", form, course=None)


@bp.route("/courses/<int:course_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit_course(course_id: int) -> ResponseReturnValue:
    course: Course = _get_or_404(Course, course_id)
    form = CourseForm(
        data=course_form_data(course) if request.method == "GET" else None,
        choices=CourseChoices.load(course),
    )
    schedule = stored_schedule(course)
    if form.validate_on_submit() and _saved(
        form, lambda: update_course(current_user, course, form.course_fields(schedule))
    ):
        flash(f"{course.title} has been updated", "success")
        return redirect(url_for("admin.courses"))
    try:
        summary = describe(schedule)
    except InvalidSchedule:  # a schedule stored before today's rules: show the sessions alone
        summary = None
    sessions = db.session.scalars(
        select(CourseSession)
        .where(CourseSession.course_id == course.id)
        .order_by(CourseSession.date, CourseSession.start_time, CourseSession.sequence)
    ).all()
    return _form_page(
        "admin/catalogue/course_form.html",
        form,
        course=course,
        schedule_summary=summary,
        sessions=sessions,
    )
